package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/logpipe/logpipe/"

// pkg is what go list says of a package.
type pkg struct {
	ImportPath string
	Deps       []string
}

// listPackages runs go list over the module (tests' imports left out: the
// rules are about what the daemons link).
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps", mod+"...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var ps []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if len(ps) < 20 {
		t.Fatalf("go list found %d packages", len(ps))
	}
	return ps
}

// rule: no package under from (a path prefix within the module, or a
// single package) links a package under any of never.
type rule struct {
	why   string
	from  []string
	never []string
}

var rules = []rule{
	{"the agent's side never links the transfer's", []string{"internal/agent"}, []string{mod + "internal/transfer"}},
	{"the transfer's side never links the agent's", []string{"internal/transfer"}, []string{mod + "internal/agent"}},
	{"the contract and the platform link neither daemon", []string{"internal/contract", "internal/platform"},
		[]string{mod + "internal/agent", mod + "internal/transfer", mod + "internal/ctl"}},
	{"nothing in the daemons links the development stand-ins", []string{"cmd/logagent", "cmd/logtransfer", "cmd/logctl", "internal/agent", "internal/transfer", "internal/contract", "internal/platform", "internal/ctl"},
		[]string{mod + "internal/dev"}},
	{"the contract links no Kafka, etcd or grpc client", []string{"internal/contract"}, clients},
	{"config links no client library", []string{"internal/platform/config"}, clients},
	{"the ES writer and the document it renders know nothing of Kafka or etcd", []string{"internal/transfer/eswriter", "internal/transfer/document"}, clients},
	{"pipelines are pure functions: no Kafka, etcd or grpc", []string{"internal/transfer/pipeline"}, clients},
}

var clients = []string{"github.com/IBM/sarama", "github.com/twmb/franz-go", "go.etcd.io/etcd/client", "google.golang.org/grpc"}

// pending are the links that break a rule today and are being removed;
// the test fails on any other, and when one listed here is gone (so the
// list only shrinks). Issue 26 emptied it.
var pending = map[string][]string{}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// violations lists, per package, the rules its links break.
func violations(ps []pkg, rs []rule) map[string]map[string]string {
	out := map[string]map[string]string{} // package → forbidden prefix → rule
	for _, p := range ps {
		rel := strings.TrimPrefix(p.ImportPath, mod)
		for _, r := range rs {
			if !slices.ContainsFunc(r.from, func(f string) bool { return under(rel, f) }) {
				continue
			}
			for _, d := range p.Deps {
				for _, n := range r.never {
					if under(d, n) {
						if out[rel] == nil {
							out[rel] = map[string]string{}
						}
						out[rel][n] = r.why
					}
				}
			}
		}
	}
	return out
}

// TestImportRules keeps the README's Layout true: each rule holds for
// every package it covers (their transitive imports, not their tests').
func TestImportRules(t *testing.T) {
	got := violations(listPackages(t), rules)
	for p, broken := range got {
		for n, why := range broken {
			if slices.Contains(pending[p], n) {
				continue
			}
			t.Errorf("%s links %s: %s", p, n, why)
		}
	}
	for p, ns := range pending {
		for _, n := range ns {
			if _, ok := got[p][n]; !ok {
				t.Errorf("%s no longer links %s: take it off the pending list", p, n)
			}
		}
	}
}

// The check sees a broken rule: a package linking what a rule forbids is
// reported, and one that does not is not.
func TestImportRulesSeeABrokenRule(t *testing.T) {
	ps := []pkg{
		{ImportPath: mod + "internal/agent/tailer", Deps: []string{mod + "internal/transfer/eswriter", "strings"}},
		{ImportPath: mod + "internal/contract/acktrack", Deps: []string{"sync"}},
		{ImportPath: mod + "cmd/logagent", Deps: []string{mod + "internal/dev/testutil"}},
		{ImportPath: mod + "internal/contract/record", Deps: []string{"github.com/IBM/sarama/internal/queue"}},
	}
	got := violations(ps, rules)
	for _, want := range [][2]string{{"internal/agent/tailer", mod + "internal/transfer"}, {"cmd/logagent", mod + "internal/dev"}, {"internal/contract/record", "github.com/IBM/sarama"}} {
		if _, ok := got[want[0]][want[1]]; !ok {
			t.Errorf("%s linking %s not reported: %v", want[0], want[1], got)
		}
	}
	if _, ok := got["internal/contract/acktrack"]; ok {
		t.Errorf("a package within the rules reported: %v", got)
	}
}
