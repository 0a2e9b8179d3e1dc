package ctl

import (
	"context"
	"fmt"
	"text/tabwriter"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/platform/election"
)

// transfers prints the live transfers from their election leases: each
// instance's id, which one leads (runs retention and installs templates),
// and what is left of its lease.
func (c *cmd) transfers(args []string) error {
	if len(args) != 0 {
		return usageError("transfers")
	}
	var cs []election.Candidate
	err := c.withEtcd(func(ctx context.Context, cli *clientv3.Client) error {
		var err error
		cs, err = election.Candidates(ctx, cli, c.electionKey)
		return err
	})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(cs)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tROLE\tLEASE LEFT\tCAMPAIGNING SINCE REV")
	for _, t := range cs {
		role, left := "follower", "?"
		if t.Leading {
			role = "leader (retention, templates)"
		}
		if t.LeaseTTL >= 0 {
			left = t.LeaseTTL.String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", t.ID, role, left, t.Revision)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(cs) == 0 {
		fmt.Fprintf(c.stdout, "(no live transfers under %s: none runs with etcd, or election_key differs)\n", c.electionKey)
	}
	return nil
}
