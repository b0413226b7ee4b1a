package cli

import (
	"encoding/csv"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"ulp/fleet"
	"ulp/internal/escape"
)

func newStatusCommand(a *app) *cobra.Command {
	var csvOut bool
	cmd := &cobra.Command{
		Use:     "status",
		Aliases: []string{"report"},
		Short:   "Report which hosts and processes carry which patches",
		Long: "status uploads the agent where it is missing and runs `ulp patches --json`\n" +
			"on every selected host (all at once, no canary), then prints per host the\n" +
			"processes with the runtime and the patches they carry, and per patch how\n" +
			"many hosts and processes carry it.\n" + exitStatusHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runReadOnly(cmd.Context(), fleet.Status, func(w io.Writer, res *fleet.Result) error {
				rep := fleet.Aggregate(res)
				switch {
				case csvOut:
					return writeReportCSV(w, rep)
				case a.cfg.JSON:
					return writeJSON(w, rep)
				}
				return writeReportText(w, rep)
			})
		},
	}
	cmd.Flags().BoolVar(&csvOut, "csv", false, "print CSV: one row per host and patch")
	return cmd
}

// writeReportCSV prints one row per host and patch it carries (one row
// with empty patch columns for a host without patches or with an error).
// The fields a host reports are escaped as in the text output: CSV would
// quote a newline, but a terminal showing it would still start a line and
// run an ESC sequence.
func writeReportCSV(w io.Writer, rep fleet.Report) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"host", "processes", "patched", "patch", "target", "container", "patch_processes", "error"})
	byID := map[string]fleet.PatchCount{}
	for _, pc := range rep.Patches {
		byID[pc.ID] = pc
	}
	for _, h := range rep.Hosts {
		row := []string{escape.Text(h.Host), strconv.Itoa(h.Processes), strconv.Itoa(h.Patched)}
		if h.Error != "" || len(h.Patches) == 0 {
			cw.Write(append(row, "", "", "", "", escape.Text(h.Error)))
			continue
		}
		ids := slices.Sorted(maps.Keys(h.Patches))
		for _, id := range ids {
			pc := byID[id]
			cw.Write(append(slices.Clone(row), escape.Text(id), escape.Text(pc.Target), escape.Text(pc.Container), strconv.Itoa(h.Patches[id]), ""))
		}
	}
	cw.Flush()
	return cw.Error()
}
