package ctl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/platform/jsonenc"
	"github.com/logpipe/logpipe/internal/transfer/pipeline"
)

// pipelineCmd runs `logctl pipeline list|get|put|test`.
func (c *cmd) pipelineCmd(sub string, args []string) error {
	switch sub {
	case "list":
		return c.pipelineList(args)
	case "get":
		return c.pipelineGet(args)
	case "put":
		return c.pipelinePut(args)
	case "test":
		return c.pipelineTest(args)
	}
	return usageError("pipeline list|get|put|test")
}

func (c *cmd) pipelineKey(name string) string { return c.pipelinesPrefix + name }

func (c *cmd) pipelineList(args []string) error {
	if len(args) != 0 {
		return usageError("pipeline list")
	}
	resp, err := c.getKey(c.pipelinesPrefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	for _, n := range pipeline.Builtins() {
		fmt.Fprintf(c.stdout, "%-24s built-in\n", n)
	}
	var names []string
	state := map[string]string{}
	for _, kv := range resp.Kvs {
		n := strings.TrimPrefix(string(kv.Key), c.pipelinesPrefix)
		names = append(names, n)
		state[n] = fmt.Sprintf("custom, revision %d", kv.ModRevision)
		if why := pipeline.ValidName(n); why != "" {
			state[n] = "INVALID name: " + why
		} else if _, err := pipeline.Parse(kv.Value); err != nil {
			state[n] = "INVALID (the transfer keeps its last good version): " + strings.ReplaceAll(err.Error(), "\n", "; ")
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(c.stdout, "%-24s %s\n", n, state[n])
	}
	return nil
}

func (c *cmd) fetchPipeline(name string) ([]byte, error) {
	resp, err := c.getKey(c.pipelineKey(name))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("no pipeline %q (%s is not set; built-in: %s)", name, c.pipelineKey(name), strings.Join(pipeline.Builtins(), ", "))
	}
	return resp.Kvs[0].Value, nil
}

func (c *cmd) pipelineGet(args []string) error {
	if len(args) != 1 {
		return usageError("pipeline get <name>")
	}
	if _, ok := pipeline.Builtin(args[0]); ok {
		fmt.Fprintf(c.stdout, "%s is a built-in pipeline (see the README)\n", args[0])
		return nil
	}
	v, err := c.fetchPipeline(args[0])
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if json.Indent(&out, v, "", "  ") != nil {
		out.Reset()
		out.Write(v)
	}
	fmt.Fprintln(c.stdout, strings.TrimSpace(out.String()))
	return nil
}

func (c *cmd) pipelinePut(args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usageError("pipeline put <name> [file|-]")
	}
	name := args[0]
	if why := pipeline.ValidName(name); why != "" {
		return fmt.Errorf("pipeline %q: %s", name, why)
	}
	data, err := c.read(args[1:])
	if err != nil {
		return err
	}
	if _, err := pipeline.Parse(data); err != nil {
		return fmt.Errorf("refusing invalid pipeline (nothing written):\n%w", err)
	}
	rev, err := c.putKey(c.pipelineKey(name), data)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "OK %s: revision %d\n", c.pipelineKey(name), rev)
	return nil
}

// pipelineTest runs sample lines (a file or stdin, one per line) through a
// pipeline, built-in or from etcd, and prints what the transfer would
// index for each, without Kafka or Elasticsearch.
func (c *cmd) pipelineTest(args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usageError("pipeline test <name> [file|-]")
	}
	f, ok := pipeline.Builtin(args[0])
	if !ok {
		def, err := c.fetchPipeline(args[0])
		if err != nil {
			return err
		}
		if f, err = pipeline.Parse(def); err != nil {
			return fmt.Errorf("pipeline %q is invalid:\n%w", args[0], err)
		}
	}
	data, err := c.read(args[1:])
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var r pipeline.Result
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r.Reset()
		f(line, now, &r)
		if r.Drop {
			fmt.Fprintln(c.stdout, "(dropped)")
			continue
		}
		t := now
		if !r.Time.IsZero() {
			t = r.Time
		}
		msg := line
		if r.HasMessage {
			msg = r.Message
		}
		out := []byte(`{"@timestamp":"`)
		out = t.UTC().AppendFormat(out, time.RFC3339Nano)
		out = append(out, `","message":`...)
		out = jsonenc.AppendString(out, msg)
		out = append(out, r.Fragment()...)
		if !r.Time.IsZero() {
			out = append(out, `,"event":{"created":"`...)
			out = now.AppendFormat(out, time.RFC3339Nano)
			out = append(out, `"}`...)
		}
		if r.Err != "" {
			out = append(out, `,"error":{"message":`...)
			out = jsonenc.AppendString(out, r.Err)
			out = append(out, '}')
		}
		out = append(out, '}')
		fmt.Fprintln(c.stdout, string(out))
	}
	return sc.Err()
}
