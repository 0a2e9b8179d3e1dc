package transferd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/olivere/elastic/v7"

	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/probe"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
)

// TestOutput checks, step by step, that the transfer can reach what cfg
// names (logtransfer test output): etcd when it uses it; Kafka, with its
// TLS and SASL, and the topics it consumes; the search engine, with its
// TLS and credentials, which engine and version it is, and the index
// template each topic would get. It prints a line a step and returns the
// first failure.
func TestOutput(ctx context.Context, cfg *config.TransferConfig, w io.Writer) error {
	r := probe.New(w)
	d := cfg.Discovery
	if d.Enabled || d.Pipelines || cfg.VerifySignatures {
		var keys []string
		if d.RetentionKey != "" {
			keys = append(keys, d.RetentionKey)
		}
		r.Etcd(ctx, d.Endpoints, d.Timeout, d.Security, keys)
	}
	topics := cfg.Kafka.Topics
	r.Kafka(ctx, cfg.Kafka.Brokers, cfg.Kafka.Version, cfg.Kafka.Security, d.Timeout, topics)
	if d.Enabled && r.Failed == nil {
		fmt.Fprintln(w, "  (topics discovered from the agents' collect configs are consumed too)")
	}
	r.Section("search engine %s", strings.Join(cfg.ES.URLs, ", "))
	for _, u := range cfg.ES.URLs {
		tc := cfg.ES.TLS.Config()
		if !strings.HasPrefix(u, "https://") {
			tc = nil
		}
		r.Endpoint(ctx, u, tc, d.Timeout)
	}
	if r.Failed != nil {
		return r.Done()
	}
	es, err := newESClient(cfg.ES)
	if err != nil {
		r.Step("client", func() (string, error) { return "", err })
		return r.Done()
	}
	r.Step("search API and auth", func() (string, error) {
		res, err := es.PerformRequest(ctx, elastic.PerformRequestOptions{Method: http.MethodGet, Path: "/"})
		if err != nil {
			var ee *elastic.Error
			if errors.As(err, &ee) && (ee.Status == http.StatusUnauthorized || ee.Status == http.StatusForbidden) {
				return "", fmt.Errorf("the engine refused the credentials (username/password or api_key): %w", err)
			}
			return "", fmt.Errorf("GET /: %w", err)
		}
		e, err := eswriter.ParseEngine(res.Body)
		if err != nil {
			return "", err
		}
		auth := "no credentials"
		switch {
		case !cfg.ES.APIKey.IsZero():
			auth = "API key"
		case cfg.ES.Username != "":
			auth = "as " + cfg.ES.Username
		}
		if !e.Tested {
			return e.String() + ", " + auth + " (a version the tests do not run: they run Elasticsearch 7.17 and OpenSearch 2.19)", nil
		}
		return e.String() + ", " + auth, nil
	})
	idx, err := index.Parse(cfg.ES.Index)
	if err != nil {
		r.Step("index pattern", func() (string, error) { return "", err })
		return r.Done()
	}
	for _, t := range topics {
		r.Step("template for "+t, func() (string, error) {
			name, pattern := eswriter.TemplateName(t), idx.Pattern(t)
			_, err := es.IndexGetIndexTemplate(name).Do(ctx)
			switch {
			case elastic.IsNotFound(err):
				return fmt.Sprintf("%s for %s: not installed yet (installed when the topic is first consumed)", name, pattern), nil
			case err != nil:
				return "", fmt.Errorf("reading template %s: %w", name, err)
			}
			return fmt.Sprintf("%s for %s: installed", name, pattern), nil
		})
	}
	return r.Done()
}
