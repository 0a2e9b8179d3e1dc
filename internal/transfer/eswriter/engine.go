package eswriter

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/backoff"
)

// Engine is the search engine a writer talks to, from its root endpoint
// (GET /): Elasticsearch and OpenSearch speak the same REST API for what
// the transfer does, and differ in what they say there (OpenSearch names
// itself in version.distribution; only Elasticsearch sends the
// X-Elastic-Product header).
type Engine struct {
	Product string `json:"product"` // "Elasticsearch" or "OpenSearch"
	Version string `json:"version"`
	// Tested says whether the project's tests run this major version
	// (Elasticsearch 7, OpenSearch 2).
	Tested bool `json:"tested"`
}

func (e Engine) String() string { return e.Product + " " + e.Version }

// ParseEngine reads an engine's root endpoint answer.
func ParseEngine(body []byte) (Engine, error) {
	var root struct {
		Version struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
		} `json:"version"`
	}
	if err := json.Unmarshal(body, &root); err != nil || root.Version.Number == "" {
		return Engine{}, fmt.Errorf("the root endpoint does not say which engine and version it is: %.200q", body)
	}
	e := Engine{Product: "Elasticsearch", Version: root.Version.Number}
	if strings.EqualFold(root.Version.Distribution, "opensearch") {
		e.Product = "OpenSearch"
	}
	major, _, _ := strings.Cut(e.Version, ".")
	e.Tested = e.Product == "Elasticsearch" && major == "7" || e.Product == "OpenSearch" && major == "2"
	return e, nil
}

// identify asks the engine which it is until it answers (with backoff),
// says so once in the log (warning for a version the tests do not run)
// and keeps it for Status.
func (w *Writer) identify(ctx context.Context) {
	if w.client == nil || !w.cfg.Identify {
		return
	}
	b := backoff.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	for {
		res, err := w.client.PerformRequest(ctx, elastic.PerformRequestOptions{Method: http.MethodGet, Path: "/"})
		if err == nil {
			var e Engine
			if e, err = ParseEngine(res.Body); err == nil {
				w.engine.Store(&e)
				l := w.log.WithFields(logrus.Fields{"product": e.Product, "version": e.Version})
				if e.Tested {
					l.Info("search engine identified")
				} else {
					l.Warn("search engine identified: a version the project's tests do not run (they run Elasticsearch 7.17 and OpenSearch 2.19); templates, bulk and retention may behave differently")
				}
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		w.thr.Log("identify", w.log.WithError(err), logrus.WarnLevel, "asking the search engine which it is; retrying")
		if !backoff.Sleep(ctx, b.Next()) {
			return
		}
	}
}
