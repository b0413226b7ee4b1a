package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"ulp/fleet"
	"ulp/internal/escape"
)

const pingSchema = "ulpfleet.ping/v1"

func newPingCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "ping",
		Short: "Connect to every selected host and check it, changing nothing",
		Long: "ping connects to every selected host (host key, authentication) and runs a\n" +
			"read-only preflight: architecture, kernel, whether the staging folder exists,\n" +
			"its free space and mount options (noexec is reported), whether this\n" +
			"ulpfleet's agent version is already there (and which others are), where the\n" +
			"runtime library is installed, and how many processes have the runtime\n" +
			"loaded. No file is written.\n" + exitStatusHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runReadOnly(cmd.Context(), fleet.Ping, a.hostOutput(pingJSON, writePingText))
		},
	}
}

// pingRecord is one host's line of `ping --json`.
type pingRecord struct {
	reportHeader
	Preflight map[string]string `json:"preflight"`
}

func pingJSON(h fleet.HostResult) any {
	rec := pingRecord{reportHeader: newReportHeader(pingSchema, h), Preflight: h.Preflight}
	if rec.Preflight == nil {
		rec.Preflight = map[string]string{}
	}
	return rec
}

func writePingText(w io.Writer, res *fleet.Result) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tRESULT\tARCH\tKERNEL\tAGENT\tFREE\tRUNTIME\tDETAIL")
	for _, h := range res.Hosts {
		pf := h.Preflight
		get := func(k string) string {
			if v := pf[k]; v != "" {
				return escape.Text(v)
			}
			return "-"
		}
		free := get("free_kib")
		if n, err := strconv.ParseInt(free, 10, 64); err == nil {
			free = fmt.Sprintf("%.1fG", float64(n)/(1<<20))
		}
		var detail []string
		if h.Err != nil {
			detail = append(detail, oneLine(h.Err.Error()))
		}
		if pf["staging_exists"] == "no" {
			detail = append(detail, "staging folder missing (created on apply)")
		}
		for _, o := range strings.Split(pf["mount_options"], ",") {
			if o == "noexec" {
				detail = append(detail, "staging folder is on a noexec mount: the agent cannot run there")
			}
		}
		if others := otherAgents(pf); len(others) > 0 {
			detail = append(detail, "other agent versions: "+strings.Join(escape.Texts(others), " "))
		}
		if h.Err == nil && pf["runtime_library"] == "" && pf["runtime_processes"] == "0" {
			detail = append(detail, "no runtime: libpulp.so.0 is not installed and no process has it loaded")
		}
		runtime := get("runtime_processes")
		if pf["preload"] == "yes" {
			runtime += " (preload)"
		}
		agent := get("agent")
		if v := pf["agent_version"]; v != "" {
			agent = escape.Text(v) + " " + agent
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", escape.Text(h.Host), h.Class(), get("arch"), get("kernel"),
			agent, free, runtime, strings.Join(detail, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c := res.Counts()
	fmt.Fprintf(&b, "ping: %d hosts: %d ok, %d failed, %d interrupted, %d not attempted\n",
		len(res.Hosts), c[fleet.StateOK], c[fleet.StateFailed], c[fleet.StateInterrupted], c[fleet.StateNotAttempted])
	_, err := io.WriteString(w, b.String())
	return err
}

// otherAgents lists the agent versions in the staging folder other than
// this ulpfleet's.
func otherAgents(pf map[string]string) []string {
	var out []string
	for _, v := range strings.Fields(pf["agents"]) {
		if v != pf["agent_version"] {
			out = append(out, v)
		}
	}
	return out
}
