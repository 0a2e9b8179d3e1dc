package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/platform/keyring"
)

// keysCmd runs `logctl keys [rotate|retire <ip>]`. Secrets are never
// printed.
func (c *cmd) keysCmd(args []string) error {
	switch {
	case len(args) == 0:
		return c.listKeys()
	case len(args) == 2 && (args[0] == "rotate" || args[0] == "retire"):
		return c.changeKeys(args[0], args[1])
	}
	return usageError("keys [rotate <ip> | retire <ip>]")
}

func (c *cmd) listKeys() error {
	resp, err := c.getKey(c.keysPrefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	type row struct {
		Key   string   `json:"key"`
		IP    string   `json:"ip,omitempty"`
		Host  string   `json:"host,omitempty"`
		Keys  []string `json:"key_ids,omitempty"`
		Error string   `json:"error,omitempty"`
	}
	var rows []row
	for _, kv := range resp.Kvs {
		r := row{Key: string(kv.Key)}
		if p, err := keyring.Parse(kv.Value); err != nil {
			r.Error = err.Error()
		} else {
			r.IP, r.Host = p.IP, p.Host
			for _, k := range p.Keys {
				r.Keys = append(r.Keys, k.ID.String())
			}
		}
		rows = append(rows, r)
	}
	if c.json {
		return c.printJSON(rows)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "IP\tHOST\tSIGNING KEY\tALSO VERIFY\tPROBLEM")
	for _, r := range rows {
		signing, also := "-", "-"
		if len(r.Keys) > 0 {
			signing = r.Keys[0]
		}
		if len(r.Keys) > 1 {
			also = strings.Join(r.Keys[1:], ",")
		}
		ip := r.IP
		if ip == "" {
			ip = strings.TrimPrefix(r.Key, c.keysPrefix)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ip, r.Host, signing, also, r.Error)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(rows) == 0 {
		fmt.Fprintln(c.stdout, "(no agent keys)")
	}
	return nil
}

// changeKeys rotates (a new signing key first, the others kept to verify
// what is still in Kafka) or retires (drops every key but the signing
// one) the keys of the agent at ip, unless the document changed meanwhile.
func (c *cmd) changeKeys(op, ip string) error {
	key := c.keysPrefix + ip
	return c.withEtcd(func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("getting %s: %w", key, err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%s: no key document (the agent creates it when it starts)", key)
		}
		kv := resp.Kvs[0]
		if _, err := keyring.Parse(kv.Value); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		var doc keyring.KeyDoc
		if err := json.Unmarshal(kv.Value, &doc); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		for i := range doc.Keys { // each key keeps the host it signs for
			if doc.Keys[i].Host == "" {
				doc.Keys[i].Host = doc.Host
			}
			if doc.Keys[i].IP == "" {
				doc.Keys[i].IP = doc.IP
			}
		}
		switch op {
		case "rotate":
			k, err := keyring.NewKey(time.Now())
			if err != nil {
				return err
			}
			k.Host, k.IP = doc.Host, doc.IP
			doc.Keys = append([]keyring.Key{k}, doc.Keys...)
			if len(doc.Keys) > keyring.MaxKeys {
				doc.Keys = doc.Keys[:keyring.MaxKeys]
			}
		case "retire":
			doc.Keys = doc.Keys[:1]
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", key, err)
		}
		tx, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).Then(clientv3.OpPut(key, string(raw))).Commit()
		if err != nil {
			return fmt.Errorf("writing %s: %w", key, err)
		}
		if !tx.Succeeded {
			return fmt.Errorf("%s changed meanwhile; nothing written, try again", key)
		}
		fmt.Fprintf(c.stdout, "%s: signing key %s, %d key(s) in all (revision %d)\n", ip, doc.Keys[0].ID, len(doc.Keys), tx.Header.Revision)
		return nil
	})
}
