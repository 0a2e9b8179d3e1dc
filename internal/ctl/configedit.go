package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/inventory"
	"github.com/logpipe/logpipe/internal/platform/pathguard"
)

// configAdd adds one entry to an agent's collect config, or replaces the
// entry with the same path and topic; the others stay byte for byte.
func (c *cmd) configAdd(args []string) error {
	if len(args) != 2 {
		return usageError("config add <ip> <entry-json>")
	}
	var entry struct {
		Path  string `json:"path"`
		Topic string `json:"topic"`
	}
	raw := json.RawMessage(strings.TrimSpace(args[1]))
	if err := json.Unmarshal(raw, &entry); err != nil {
		return fmt.Errorf("the entry is not a JSON object such as {\"path\":\"/var/log/a.log\",\"topic\":\"web_log\"}: %w", err)
	}
	return c.editConfig(args[0], func(entries []json.RawMessage) ([]json.RawMessage, string, error) {
		for i, e := range entries {
			p, t := pathTopic(e)
			if p == entry.Path && t == entry.Topic {
				entries[i] = raw
				return entries, "replaced the entry for " + entry.Path + " → " + entry.Topic, nil
			}
		}
		return append(entries, raw), "added " + entry.Path + " → " + entry.Topic, nil
	})
}

// configRemove removes the entries of a path (of one topic, if given).
func (c *cmd) configRemove(args []string) error {
	if len(args) != 2 && len(args) != 3 {
		return usageError("config remove <ip> <path> [topic]")
	}
	path := args[1]
	return c.editConfig(args[0], func(entries []json.RawMessage) ([]json.RawMessage, string, error) {
		kept := entries[:0:0]
		n := 0
		for _, e := range entries {
			p, t := pathTopic(e)
			if p == path && (len(args) == 2 || t == args[2]) {
				n++
				continue
			}
			kept = append(kept, e)
		}
		if n == 0 {
			return nil, "", fmt.Errorf("no entry of the collect config collects %s (nothing written)", path)
		}
		return kept, fmt.Sprintf("removed %d entr%s for %s", n, map[bool]string{true: "y", false: "ies"}[n == 1], path), nil
	})
}

func pathTopic(e json.RawMessage) (string, string) {
	var v struct {
		Path  string `json:"path"`
		Topic string `json:"topic"`
	}
	_ = json.Unmarshal(e, &v)
	return v.Path, v.Topic
}

// editConfig changes the collect config of ip with edit, validates the
// result as the agent will (and against its allowlist), and writes it only
// if nobody changed the key meanwhile (compare-and-swap on its revision).
func (c *cmd) editConfig(ip string, edit func([]json.RawMessage) ([]json.RawMessage, string, error)) error {
	k := c.collectKind()
	key := k.key(ip)
	return c.withEtcd(func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("getting %s: %w", key, err)
		}
		var entries []json.RawMessage
		var rev int64 // 0: absent
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			if err := json.Unmarshal(resp.Kvs[0].Value, &entries); err != nil {
				return fmt.Errorf("the collect config at %s is not a JSON list (fix it with config put): %w", key, err)
			}
		}
		entries, what, err := edit(entries)
		if err != nil {
			return err
		}
		if entries == nil {
			entries = []json.RawMessage{}
		}
		data, err := json.Marshal(entries)
		if err != nil {
			return fmt.Errorf("encoding the collect config: %w", err)
		}
		summary, err := c.checkFor(ctx, cli, k, ip, data)
		if err != nil {
			return fmt.Errorf("refusing the changed collect config (nothing written):\n%w", err)
		}
		cmp := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
		tr, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(data))).Commit()
		if err != nil {
			return fmt.Errorf("putting %s: %w", key, err)
		}
		if !tr.Succeeded {
			return fmt.Errorf("%s changed while it was edited (nothing written): run the command again", key)
		}
		fmt.Fprintf(c.stdout, "OK %s: %s; %s, revision %d\n", key, what, summary, tr.Header.Revision)
		return nil
	})
}

// checkFor validates data as the agent at ip will: with its parser, and,
// for a collect config, against the allowlist the agent publishes in its
// inventory entry ([agent] allowed_paths). An agent that is not live
// cannot be asked: that is said on stderr, and only the parser checks.
func (c *cmd) checkFor(ctx context.Context, cli *clientv3.Client, k kind, ip string, data []byte) (string, error) {
	summary, err := k.check(data)
	if err != nil || k.cmd != "config" {
		return summary, err
	}
	entries, err := collectconf.Parse(data)
	if err != nil {
		return "", err
	}
	resp, err := cli.Get(ctx, c.agentsPrefix+ip)
	if err != nil {
		return "", fmt.Errorf("reading the agent's inventory entry %s: %w", c.agentsPrefix+ip, err)
	}
	var r inventory.Report
	if len(resp.Kvs) == 0 || json.Unmarshal(resp.Kvs[0].Value, &r) != nil {
		fmt.Fprintf(c.stderr, "note: the agent at %s is not live (no inventory entry at %s): its allowed_paths are unknown, so paths were checked by the parser only\n", ip, c.agentsPrefix+ip)
		return summary, nil
	}
	if len(r.AllowedPaths) == 0 {
		fmt.Fprintf(c.stderr, "note: the agent at %s (version %s) does not publish its allowed_paths: paths were checked by the parser only\n", ip, r.Version)
		return summary, nil
	}
	g, err := pathguard.New(r.AllowedPaths)
	if err != nil {
		return "", fmt.Errorf("the agent's published allowed_paths: %w", err)
	}
	var errs []error
	for i, e := range entries {
		if err := g.CheckEntry(e.Path); err != nil {
			errs = append(errs, fmt.Errorf("entry %d (path %q, topic %q): %w", i, e.Path, e.Topic, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("the agent at %s would refuse it:\n%w", ip, err)
	}
	return summary + ", every path within the agent's allowed_paths", nil
}
