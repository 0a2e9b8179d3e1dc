package transfer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/jsonenc"
	"github.com/logpipe/logpipe/internal/transfer/document"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
)

// metricDoc is the document of a host metrics record (record.KindMetric):
// its value, a Metricbeat document without host, with the host the record
// names (the signing key's, for a signed record) put first. A value that
// is not such an object is dead-lettered with the reason. The index and
// _id are picked as for lines: from the record alone.
func (c *Consumer) metricDoc(msg *sarama.ConsumerMessage, meta *record.View, st *claimState, read time.Time, signed bool) *eswriter.Doc {
	idxTime, _ := c.placeTime(msg, meta.IndexTime, signed)
	if key := c.opt.Index.Period(idxTime); key != st.indexKey || st.indexName == "" {
		st.indexKey, st.indexName = key, c.opt.Index.Name(msg.Topic, idxTime)
	}
	d := &eswriter.Doc{Index: st.indexName, ID: docID(msg, meta, st), Time: read, Origin: (*origin)(msg), Topic: msg.Topic}
	body, err := metricBody(meta, msg.Value)
	if err != nil {
		d.Body, d.Reject = []byte{}, "host metrics document: "+err.Error()
		return d
	}
	d.Body = body
	return d
}

// maxMetricDoc bounds a metrics document (a collection's largest is a few
// KB).
const maxMetricDoc = 64 << 10

// metricBody checks that value is one JSON object without "host" and
// renders it on one line (the bulk body is NDJSON) with the host first.
func metricBody(meta *record.View, value []byte) ([]byte, error) {
	if len(value) > maxMetricDoc {
		return nil, errors.New("larger than 64 KiB")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, value); err != nil {
		return nil, errors.New("not valid JSON")
	}
	v := compact.Bytes()
	if len(v) < 2 || v[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.Token() // {
	var namesAgent, namesECS bool
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, errors.New("not a JSON object")
		}
		switch k {
		case "host":
			return nil, errors.New(`it names "host" itself (the record's headers say which host)`)
		case "agent":
			namesAgent = true
		case "ecs":
			namesECS = true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, errors.New("not a JSON object")
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	out := make([]byte, 0, len(v)+2*len(meta.HostName)+len(meta.HostIP)+len(meta.AgentID)+len(meta.AgentVersion)+128)
	out = append(out, `{"host":{"name":`...)
	out = jsonenc.AppendString(out, meta.HostName)
	if len(meta.HostIP) > 0 {
		out = append(out, `,"ip":`...)
		out = jsonenc.AppendString(out, meta.HostIP)
	}
	out = append(out, '}')
	if len(meta.AgentID) > 0 && !namesAgent {
		out = append(out, `,"agent":{"type":"`+document.AgentType+`","id":`...)
		out = jsonenc.AppendString(out, meta.AgentID)
		out = append(out, `,"name":`...)
		out = jsonenc.AppendString(out, meta.HostName)
		if len(meta.AgentVersion) > 0 {
			out = append(out, `,"version":`...)
			out = jsonenc.AppendString(out, meta.AgentVersion)
		}
		out = append(out, '}')
	}
	if !namesECS {
		out = append(out, `,"ecs":{"version":"`+document.ECSVersion+`"}`...)
	}
	if len(v) > 2 {
		out = append(out, ',')
	}
	return append(out, v[1:]...), nil
}
