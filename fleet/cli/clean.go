package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"ulp/fleet"
	"ulp/internal/escape"
)

const cleanSchema = "ulpfleet.clean/v1"

func newCleanCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "clean",
		Short: "Remove staging garbage on every selected host: partial uploads and other agent versions",
		Long: "clean runs on every selected host at once, under the host's lock (so never\n" +
			"during a trigger there), and removes from the staging folder the temporary\n" +
			"files of uploads that died (.NAME.tmp-*) and every agent bin/ulp-* but this\n" +
			"ulpfleet's, both only when older than 10 minutes, so that an upload of\n" +
			"another controller in progress keeps its files. Containers are kept: the\n" +
			"patches applied from them are reverted with them.\n" + exitStatusHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runReadOnly(cmd.Context(), fleet.Clean, a.hostOutput(cleanJSON, writeCleanText))
		},
	}
}

// cleanRecord is one host's line of `clean --json`.
type cleanRecord struct {
	reportHeader
	Removed []string `json:"removed"`
}

func cleanJSON(h fleet.HostResult) any {
	rec := cleanRecord{reportHeader: newReportHeader(cleanSchema, h), Removed: h.Removed}
	if rec.Removed == nil {
		rec.Removed = []string{}
	}
	return rec
}

func writeCleanText(w io.Writer, res *fleet.Result) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tRESULT\tREMOVED\tDETAIL")
	total := 0
	for _, h := range res.Hosts {
		detail := strings.Join(h.Removed, " ")
		if h.Err != nil {
			detail = h.Err.Error()
		}
		removed := "-"
		if h.State == fleet.StateOK {
			removed = fmt.Sprint(len(h.Removed))
		}
		total += len(h.Removed)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", escape.Text(h.Host), h.Class(), removed, oneLine(detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c := res.Counts()
	fmt.Fprintf(&b, "clean: %d hosts: %d ok, %d failed, %d interrupted, %d not attempted; %d files removed\n",
		len(res.Hosts), c[fleet.StateOK], c[fleet.StateFailed], c[fleet.StateInterrupted], c[fleet.StateNotAttempted], total)
	_, err := io.WriteString(w, b.String())
	return err
}
