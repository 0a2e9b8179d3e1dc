package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/logpipe/logpipe/internal/transfer/indexlife"
)

// indices lists the indices of the topics a transfer serves and what its
// retention makes of each (the transfer's GET /indices): nothing is
// deleted. --expired keeps only those the next sweep deletes.
func (c *cmd) indices(args []string) error {
	expired := false
	for _, a := range args {
		switch a {
		case "--expired", "-expired":
			expired = true
		default:
			return usageError("indices [--expired]")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout+30*time.Second)
	defer cancel()
	url := strings.TrimSuffix(c.transfer, "/") + "/indices"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("asking the transfer at %s: %w", c.transfer, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("asking the transfer at %s (-transfer): %w", c.transfer, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the transfer's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the transfer at %s answered %d: %s", c.transfer, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var got struct{ Indices []indexlife.Index }
	if err := json.Unmarshal(body, &got); err != nil {
		return fmt.Errorf("decoding the transfer's answer: %w", err)
	}
	list := got.Indices[:0:0]
	for _, ix := range got.Indices {
		if !expired || ix.Expired {
			list = append(list, ix)
		}
	}
	if c.json {
		return c.printJSON(list)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "INDEX\tTOPIC\tHEALTH\tDOCS\tSIZE\tEXPIRES\tRETENTION")
	gone := 0
	for _, ix := range list {
		exp, what := "-", "keep"
		if !ix.Expires.IsZero() {
			exp = ix.Expires.UTC().Format("2006-01-02 15:04")
		}
		switch {
		case ix.Expired:
			what = "expired: the next sweep deletes it"
			gone++
		case ix.Kept != "":
			what = "never deleted: " + ix.Kept
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", ix.Name, ix.Topic, ix.Health, ix.Docs, fmtBytes(ix.Bytes), exp, what)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%d indices, %d expired\n", len(list), gone)
	return nil
}
