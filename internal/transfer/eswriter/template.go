package eswriter

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/config"
)

// TemplateName is the composable index template logtransfer manages for
// a topic.
func TemplateName(topic string) string { return "logpipe-" + strings.ToLower(topic) }

// TemplatePriority orders the managed templates so that no two whose
// patterns overlap share a priority (Elasticsearch refuses that): a topic's
// pattern "<topic>-*" can only overlap another's when one topic plus "-" is
// a prefix of the other, so the longer, more specific pattern gets the
// higher priority ("nginx-error-*" over "nginx-*").
func TemplatePriority(pattern string) int { return 200 + len(pattern) }

// ManagedBy is the marker the transfer leaves in the mapping of every
// index it creates (_meta.managed_by, through its template): retention
// deletes no index without it.
const ManagedBy = "logtransfer"

// TemplateBody is the composable index template for topic's indices,
// matching pattern: the settings the operator gave the topic (shards,
// replicas, refresh interval), the marker (_meta: managed_by ManagedBy and
// the topic, copied into each index's mapping), @timestamp as date, message as text, the pipeline's host, log
// and kafka fields as keyword/long, the built-in processing pipelines'
// fields with their types (long, ip, keyword, date), and other strings
// (the agents' static fields) as keyword, host metrics' shares and load
// as floats, so a Kibana data view "<topic>-*" works at once.
func TemplateBody(topic, pattern string, set config.IndexSettings) []byte {
	kw := map[string]any{"type": "keyword"}
	long := map[string]any{"type": "long"}
	date := map[string]any{"type": "date", "format": "strict_date_optional_time_nanos||strict_date_optional_time"}
	t := map[string]any{
		"index_patterns": []string{pattern},
		"priority":       TemplatePriority(pattern),
		"_meta":          map[string]any{"managed_by": ManagedBy, "topic": topic},
		"template": map[string]any{
			"settings": map[string]any{"index": map[string]any{
				"number_of_shards":   set.Shards,
				"number_of_replicas": set.Replicas,
				"refresh_interval":   esDuration(set.RefreshInterval),
			}},
			"mappings": map[string]any{
				"_meta": map[string]any{"managed_by": ManagedBy, "topic": topic},
				"dynamic_templates": []any{
					// Host metrics (Metricbeat's names): shares and load are
					// fractions, whatever the first value happened to be (0
					// and 1 are JSON integers, which would map them long).
					// float, not Metricbeat's scaled_float: that type lives in
					// a module (mapper-extras) an engine may be built without
					// (the Maven Central assembly the tests run is).
					// Only JSON integers need it: other numbers map as float
					// by default, and objects under these paths
					// (system.load.norm) stay objects.
					map[string]any{"pct_as_float": map[string]any{
						"path_match":         "*.pct",
						"match_mapping_type": "long",
						"mapping":            map[string]any{"type": "float"},
					}},
					map[string]any{"load_as_float": map[string]any{
						"path_match":         "system.load.*",
						"match_mapping_type": "long",
						"mapping":            map[string]any{"type": "float"},
					}},
					map[string]any{"strings_as_keyword": map[string]any{
						"match_mapping_type": "string",
						"mapping":            map[string]any{"type": "keyword", "ignore_above": 1024},
					}},
				},
				"properties": map[string]any{
					"@timestamp": date,
					"message":    map[string]any{"type": "text"},
					// host.ip is an ip (ECS), so range and CIDR queries work; a
					// producer's value that is not one is kept in _source
					// rather than costing the document.
					"host":  map[string]any{"properties": map[string]any{"name": kw, "ip": map[string]any{"type": "ip", "ignore_malformed": true}, "hostname": kw}},
					"agent": map[string]any{"properties": map[string]any{"type": kw, "id": kw, "name": kw, "version": kw}},
					"ecs":   map[string]any{"properties": map[string]any{"version": kw}},
					"log": map[string]any{"properties": map[string]any{
						"file":   map[string]any{"properties": map[string]any{"path": kw}},
						"offset": long,
						"flags":  kw,
						"syslog": map[string]any{"properties": map[string]any{
							"priority": long, "msgid": kw,
							"facility": map[string]any{"properties": map[string]any{"code": long}},
							"severity": map[string]any{"properties": map[string]any{"code": long}},
						}},
					}},
					"kafka": map[string]any{"properties": map[string]any{"topic": kw, "partition": long, "offset": long}},
					// The built-in pipelines' fields (internal/transfer/pipeline).
					"event": map[string]any{"properties": map[string]any{"created": date, "ingested": date, "dataset": kw, "module": kw, "kind": kw,
						"timestamp_out_of_range": kw}},
					"error":  map[string]any{"properties": map[string]any{"message": map[string]any{"type": "text"}}},
					"source": map[string]any{"properties": map[string]any{"ip": map[string]any{"type": "ip"}, "address": kw}},
					"user":   map[string]any{"properties": map[string]any{"name": kw}},
					"url":    map[string]any{"properties": map[string]any{"original": map[string]any{"type": "keyword", "ignore_above": 8191}}},
					"http": map[string]any{"properties": map[string]any{
						"version": kw,
						"request": map[string]any{"properties": map[string]any{"method": kw, "referrer": kw}},
						"response": map[string]any{"properties": map[string]any{
							"status_code": long,
							"body":        map[string]any{"properties": map[string]any{"bytes": long}},
						}},
					}},
					"user_agent": map[string]any{"properties": map[string]any{"original": kw}},
					"process":    map[string]any{"properties": map[string]any{"name": kw, "pid": long}},
				},
			},
		},
	}
	b, _ := json.Marshal(t) // static shape: always marshals
	return b
}

// esDuration writes d as Elasticsearch reads a time value ("-1": never).
func esDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-1"
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
}

// EnsureTemplate installs (or updates) the template named name for
// pattern, retrying until Elasticsearch accepts it or ctx ends.
// TryTemplate makes one attempt at installing the template (bounded by
// 10 s), for callers that keep other work going while it fails.
func (w *Writer) TryTemplate(ctx context.Context, topic, pattern string, set config.IndexSettings) error {
	name := TemplateName(topic)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := w.client.IndexPutIndexTemplate(name).BodyString(string(TemplateBody(topic, pattern, set))).Do(ctx); err != nil {
		return fmt.Errorf("installing index template %s for %s: %w", name, pattern, err)
	}
	w.log.WithFields(logrus.Fields{"template": name, "pattern": pattern}).Info("index template installed")
	return nil
}

// HasTemplate reports (nil) that topic's index template is installed: a
// transfer that does not lead waits for the leader's (bounded by 10 s).
func (w *Writer) HasTemplate(ctx context.Context, topic string) error {
	name := TemplateName(topic)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := w.client.IndexGetIndexTemplate(name).Do(ctx)
	if elastic.IsNotFound(err) {
		return fmt.Errorf("index template %s is not installed yet (the leading transfer installs it)", name)
	}
	if err != nil {
		return fmt.Errorf("looking for index template %s: %w", name, err)
	}
	return nil
}
