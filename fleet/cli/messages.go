package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"ulp/fleet"
	"ulp/internal/escape"
	"ulp/livepatch/report"
)

const messagesSchema = "ulpfleet.messages/v1"

func newMessagesCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "messages",
		Short: "Print the runtime's message ring of every process with the runtime on every selected host",
		Long: "messages uploads the agent where it is missing and runs `ulp messages --json\n" +
			"-p '*'` on every selected host (all at once, no canary): what the runtime and\n" +
			"the agent logged in each process (its start, patches applied and reverted,\n" +
			"load errors). Each line is printed as HOST: PID (NAME): LINE.\n" + exitStatusHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runReadOnly(cmd.Context(), fleet.Messages, a.hostOutput(messagesJSON, writeMessagesText))
		},
	}
}

// messagesRecord is one host's line of `messages --json`.
type messagesRecord struct {
	reportHeader
	Processes []report.ProcessMessages `json:"processes"`
}

func messagesJSON(h fleet.HostResult) any {
	rec := messagesRecord{reportHeader: newReportHeader(messagesSchema, h), Processes: h.Messages}
	if rec.Processes == nil {
		rec.Processes = []report.ProcessMessages{}
	}
	return rec
}

// writeMessagesText prints HOST: PID (NAME): LINE for every line, in plan
// and process order, and HOST: error: ... for a host or process that could
// not be read; what the hosts sent is printed made safe (cell).
func writeMessagesText(w io.Writer, res *fleet.Result) error {
	var b strings.Builder
	for _, h := range res.Hosts {
		if h.Err != nil {
			fmt.Fprintf(&b, "%s: error: %s\n", escape.Text(h.Host), oneLine(h.Err.Error()))
			continue
		}
		if len(h.Messages) == 0 {
			fmt.Fprintf(&b, "%s: no process with the runtime\n", escape.Text(h.Host))
		}
		for _, pm := range h.Messages {
			if pm.Error != "" {
				fmt.Fprintf(&b, "%s: %d (%s): error: %s\n", escape.Text(h.Host), pm.PID, escape.Text(pm.Comm), oneLine(pm.Error))
			}
			for _, l := range pm.Messages {
				fmt.Fprintf(&b, "%s: %d (%s): %s\n", escape.Text(h.Host), pm.PID, escape.Text(pm.Comm), escape.Text(l))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
