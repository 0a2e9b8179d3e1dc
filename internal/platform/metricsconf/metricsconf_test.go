package metricsconf

import (
	"strings"
	"testing"
	"time"
)

func TestGoodConfigs(t *testing.T) {
	f := func(in string, want Config, outputs string) {
		t.Helper()
		c, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if c.Interval != want.Interval || c.Topic != want.Topic || c.Prometheus != want.Prometheus || (c.Influx == nil) != (want.Influx == nil) {
			t.Errorf("%s: got %+v, want %+v", in, c, want)
		}
		if want.Influx != nil && *c.Influx != *want.Influx {
			t.Errorf("%s: influx %+v, want %+v", in, *c.Influx, *want.Influx)
		}
		if got := strings.Join(c.Outputs(), ","); got != outputs {
			t.Errorf("%s: outputs %q, want %q", in, got, outputs)
		}
	}
	f(`{}`, Config{Interval: 10 * time.Second}, "")
	f(`{"interval":"1s","prometheus":true}`, Config{Interval: time.Second, Prometheus: true}, "prometheus")
	f(`{"interval":"1h","topic":"host_metrics"}`, Config{Interval: time.Hour, Topic: "host_metrics"}, "kafka")
	f(`{"interval":"10s","topic":"host_metrics","prometheus":true,"influx":{"url":"http://influx:8086/write?db=telegraf"}}`,
		Config{Interval: 10 * time.Second, Topic: "host_metrics", Prometheus: true, Influx: &Influx{URL: "http://influx:8086/write?db=telegraf", MaxPoints: DefaultMaxPoints}},
		"kafka,prometheus,influx")
	f(`{"influx":{"url":"https://i.example/api/v2/write?org=o&bucket=b","token":"env:LOGPIPE_INFLUX_TOKEN","max_points":50}}`,
		Config{Interval: 10 * time.Second, Influx: &Influx{URL: "https://i.example/api/v2/write?org=o&bucket=b", V2: true, TokenEnv: "LOGPIPE_INFLUX_TOKEN", MaxPoints: 50}}, "influx")
}

// Every bad config is refused whole, with what is wrong in words an
// operator can act on.
func TestBadConfigs(t *testing.T) {
	f := func(in string, wants ...string) {
		t.Helper()
		_, err := Parse([]byte(in))
		if err == nil {
			t.Fatalf("%s: accepted", in)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", in, err, w)
			}
		}
	}
	f(``, "empty")
	f(`null`, "null")
	f(`[]`, "not a JSON object")
	f(`{"interval":"10s"} {}`, "trailing data")
	f(`{"intervall":"10s"}`, `unknown field "intervall"`)
	f(`{"interval":10}`, `field "interval"`)
	f(`{"interval":"soon"}`, `interval "soon"`)
	f(`{"interval":"500ms"}`, "want 1s to 1h0m0s")
	f(`{"interval":"2h"}`, "want 1s to 1h0m0s")
	f(`{"topic":"a b"}`, "not a legal Kafka topic name")
	f(`{"prometheus":"yes"}`, `field "prometheus"`)
	f(`{"influx":{}}`, "url is required")
	f(`{"influx":{"url":"ftp://x/write?db=a"}}`, "want http or https")
	f(`{"influx":{"url":"http://x/query?db=a"}}`, "must be /write")
	f(`{"influx":{"url":"http://x/write"}}`, "needs ?db=NAME")
	f(`{"influx":{"url":"http://x/api/v2/write?org=o"}}`, "needs ?bucket=NAME")
	f(`{"influx":{"url":"http://u:p@x/write?db=a"}}`, "holds credentials")
	f(`{"influx":{"url":"http://x/write?db=a&precision=s"}}`, "leave precision out")
	f(`{"influx":{"url":"http://x/write?db=a","token":"s3cret"}}`, "never written into etcd")
	f(`{"influx":{"url":"http://x/write?db=a","token":"file:/etc/shadow"}}`, "want env:LOGPIPE_NAME")
	f(`{"influx":{"url":"http://x/write?db=a","token":"env:AWS_SECRET_ACCESS_KEY"}}`, "must start with LOGPIPE_")
	f(`{"influx":{"url":"http://x/write?db=a","max_points":0}}`, "max_points 0")
	f(`{"topic":"a b","interval":"0s","influx":{"url":""}}`, "topic", "interval", "url is required") // all at once
	f(`{"topic":"`+strings.Repeat("a", MaxBytes)+`"}`, "more than the limit")
}

// A secret-looking value is never echoed back in an error.
func TestErrorsDoNotEchoTokens(t *testing.T) {
	_, err := Parse([]byte(`{"influx":{"url":"http://x/write?db=a","token":"s3cret-value"}}`))
	if err == nil || strings.Contains(err.Error(), "s3cret-value") {
		t.Errorf("error %v", err)
	}
}

// Whatever a config writer puts, Parse returns, and what it accepts is
// within bounds.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{}`, `{"interval":"1s","topic":"t","prometheus":true,"influx":{"url":"http://x/write?db=a","token":"env:LOGPIPE_T","max_points":3}}`, `[`, `{"influx":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		if c.Interval < MinInterval || c.Interval > MaxInterval {
			t.Fatalf("accepted interval %s", c.Interval)
		}
		if c.Influx != nil && (c.Influx.MaxPoints < 1 || c.Influx.MaxPoints > MaxMaxPoints || c.Influx.URL == "" ||
			c.Influx.TokenEnv != "" && !strings.HasPrefix(c.Influx.TokenEnv, TokenEnvPrefix)) {
			t.Fatalf("accepted influx %+v", *c.Influx)
		}
	})
}
