package e2e

import (
	"encoding/json"
	"testing"

	"github.com/logpipe/logpipe/internal/dev/fakees"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// store is what a scenario reads back: the fake's memory, or the real
// node through its REST API.
type store interface {
	Count() int      // documents stored
	Docs() []doc     // every document
	Overwrites() int // index operations that replaced an existing _id
	// AlreadyStored counts creates refused because the _id was stored
	// (409): re-deliveries.
	AlreadyStored() int
}

type doc struct {
	ID     string
	Source json.RawMessage
}

type fakeStore struct{ es *fakees.Server }

func (f fakeStore) Count() int         { return f.es.Count() }
func (f fakeStore) Overwrites() int    { return int(f.es.Stats().Updated) }
func (f fakeStore) AlreadyStored() int { return int(f.es.Stats().Conflicts) }
func (f fakeStore) Docs() []doc {
	var out []doc
	for _, docs := range f.es.Docs() {
		for id, raw := range docs {
			out = append(out, doc{ID: id, Source: raw})
		}
	}
	return out
}

// realStore reads one scenario's indices of the real node.
type realStore struct {
	t     *testing.T
	es    testutil.ESClient
	index string
}

func (r *realStore) Count() int { return r.es.Count(r.t, r.index, "") }

// Overwrites sums, over the documents, how often each was indexed again
// (its _version minus one).
func (r *realStore) Overwrites() int {
	n := 0
	r.scan(false, func(h testutil.Hit) {
		if h.Version > 1 {
			n += int(h.Version - 1)
		}
	})
	return n
}

// AlreadyStored is the indices' failed index operations: Elasticsearch
// counts a create answered 409 there, and the scenarios cause no other
// item failure in these indices (mapping errors would go to the
// dead-letter topic and fail the scenario's exactly-once check).
func (r *realStore) AlreadyStored() int {
	var st struct {
		All struct {
			Total struct {
				Indexing struct {
					IndexFailed int `json:"index_failed"`
				} `json:"indexing"`
			} `json:"total"`
		} `json:"_all"`
	}
	r.es.JSON(r.t, 200, "GET", "/"+r.index+"/_stats/indexing", "", &st)
	return st.All.Total.Indexing.IndexFailed
}

func (r *realStore) Docs() []doc {
	var out []doc
	r.scan(true, func(h testutil.Hit) { out = append(out, doc{ID: h.ID, Source: h.Source}) })
	return out
}

// scan pages through every document in a stable order.
func (r *realStore) scan(source bool, f func(testutil.Hit)) {
	r.es.Scan(r.t, r.index, `[{"kafka.partition":"asc"},{"kafka.offset":"asc"},{"_id":"asc"}]`, source, f)
}
