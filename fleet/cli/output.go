package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"ulp/fleet"
	"ulp/internal/escape"
	"ulp/livepatch/report"
)

// Schemas of ulpfleet's --json records.
const (
	hostSchema    = "ulpfleet.host/v1"
	summarySchema = "ulpfleet.summary/v1"
)

// hostRecord is one host's line of `--json` rollout output.
type hostRecord struct {
	Schema       string           `json:"schema"`
	Type         string           `json:"type"` // "host"
	Host         string           `json:"host"`
	Index        int              `json:"index"` // position in the plan, 0-based
	Wave         int              `json:"wave"`  // 1-based
	State        fleet.State      `json:"state"`
	Class        string           `json:"class"`
	Phase        string           `json:"phase,omitempty"`
	Error        string           `json:"error,omitempty"`
	Patched      int              `json:"patched"`
	Skipped      int              `json:"skipped"`
	Failed       int              `json:"failed"`
	Inconsistent int              `json:"inconsistent"`
	Inaccessible int              `json:"inaccessible"`
	AgentRan     bool             `json:"agent_ran"`
	Uploaded     int              `json:"uploaded"`
	Unchanged    int              `json:"unchanged"`
	DurationMS   int64            `json:"duration_ms"`
	Processes    []report.Process `json:"processes"`
}

// summaryRecord is the last line of `--json` rollout output.
type summaryRecord struct {
	Schema       string `json:"schema"`
	Type         string `json:"type"` // "summary"
	Action       string `json:"action"`
	Hosts        int    `json:"hosts"`
	OK           int    `json:"ok"`
	Error        int    `json:"error"`
	Failed       int    `json:"failed"`
	Interrupted  int    `json:"interrupted"`
	NotAttempted int    `json:"not_attempted"`
	Patched      int    `json:"patched"`
	Skipped      int    `json:"skipped"`
	ProcFailed   int    `json:"processes_failed"`
	Stopped      string `json:"stopped,omitempty"`
	Cancelled    bool   `json:"cancelled"`
	DurationMS   int64  `json:"duration_ms"`
	// Containers and RevertAll say what the run did, so that `ulpfleet
	// retry` can do it again on the hosts that did not succeed.
	Containers []fleet.Artifact `json:"containers"`
	RevertAll  string           `json:"revert_all,omitempty"`
	// Trusted is the run's trust policy folder (--trusted), which a retry
	// keeps.
	Trusted string `json:"trusted,omitempty"`
	// Activate records --activate, which a retry keeps.
	Activate bool `json:"activate,omitempty"`
}

// newHostRecord returns the --json record of result h at plan position i.
func newHostRecord(i int, h *fleet.HostResult) hostRecord {
	rec := hostRecord{Schema: hostSchema, Type: "host", Host: h.Host, Index: i, Wave: h.Wave + 1, State: h.State,
		Class: h.Class(), Phase: h.Phase, Patched: h.Patched, Skipped: h.Skipped, Failed: h.Failed,
		Inconsistent: h.Inconsistent, Inaccessible: h.Inaccessible, AgentRan: h.AgentRan, Uploaded: h.Uploaded, Unchanged: h.Unchanged,
		DurationMS: h.Duration.Milliseconds(), Processes: h.Processes}
	if rec.Processes == nil {
		rec.Processes = []report.Process{}
	}
	if h.Err != nil {
		rec.Error = h.Err.Error()
	}
	return rec
}

// jsonStream prints each host's record as soon as the host is done, so that
// a long rollout can be followed (`| jq`); hosts never started are printed
// by writeResultJSON at the end.
type jsonStream struct {
	enc   *json.Encoder
	index map[string]int
	err   error
}

// planIndex maps each host of p to its position in the plan.
func planIndex(p *fleet.Plan) map[string]int {
	index := make(map[string]int, p.NumHosts())
	i := 0
	for _, wv := range p.Waves {
		for _, h := range wv.Hosts {
			index[h.Host.Name] = i
			i++
		}
	}
	return index
}

func (s *jsonStream) observe(e fleet.Event) {
	if e.Kind == fleet.HostDone && s.err == nil {
		s.err = s.enc.Encode(newHostRecord(s.index[e.Host], e.Result))
	}
}

// writeResultJSON prints one record per host of p in plan order (with
// streamed, only the hosts never started: the others were printed as they
// finished), then the summary.
func writeResultJSON(w io.Writer, p *fleet.Plan, res *fleet.Result, streamed bool) error {
	enc := json.NewEncoder(w)
	for i := range res.Hosts {
		h := &res.Hosts[i]
		if streamed && h.State != fleet.StateNotAttempted {
			continue
		}
		if err := enc.Encode(newHostRecord(i, h)); err != nil {
			return err
		}
	}
	c := res.Counts()
	pt, st, ft := totals(res)
	containers := p.Containers
	if containers == nil {
		containers = []fleet.Artifact{}
	}
	return enc.Encode(summaryRecord{Schema: summarySchema, Type: "summary", Action: string(res.Action),
		Hosts: len(res.Hosts), OK: c[fleet.StateOK], Error: c[fleet.StateError], Failed: c[fleet.StateFailed],
		Interrupted: c[fleet.StateInterrupted], NotAttempted: c[fleet.StateNotAttempted],
		Patched: pt, Skipped: st, ProcFailed: ft, Stopped: res.Stopped, Cancelled: res.Cancelled,
		DurationMS: res.Duration.Milliseconds(), Containers: containers, RevertAll: p.RevertAll,
		Trusted: p.Trusted, Activate: p.Activate})
}

func totals(res *fleet.Result) (patched, skipped, failed int) {
	for _, h := range res.Hosts {
		patched += h.Patched
		skipped += h.Skipped
		failed += h.Failed
	}
	return
}

// writeResultText prints a table of hosts and a summary line. A revert's
// counts are of processes reverted.
func writeResultText(w io.Writer, p *fleet.Plan, res *fleet.Result) error {
	done := "PATCHED"
	if res.Action == fleet.Revert {
		done = "REVERTED"
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "HOST\tWAVE\tRESULT\t%s\tSKIPPED\tFAILED\tDETAIL\n", done)
	for _, h := range res.Hosts {
		wave := strconv.Itoa(h.Wave + 1)
		if h.Wave < len(p.Waves) {
			wave = p.Waves[h.Wave].Name
		}
		counts := "-\t-\t-"
		if h.State == fleet.StateOK || h.AgentRan {
			counts = fmt.Sprintf("%d\t%d\t%d", h.Patched, h.Skipped, h.Failed)
		}
		var detail []string
		if h.Err != nil {
			detail = append(detail, h.Err.Error())
		}
		if r := skipReasons(h.Processes); r != "" {
			detail = append(detail, "skipped: "+r)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", escape.Text(h.Host), wave, h.Class(), counts, oneLine(strings.Join(detail, "; ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c := res.Counts()
	pt, st, ft := totals(res)
	fmt.Fprintf(&b, "%s: %d hosts: %d ok, %d with process errors, %d failed, %d interrupted, %d not attempted; processes: %d %s, %d skipped, %d failed",
		res.Action, len(res.Hosts), c[fleet.StateOK], c[fleet.StateError], c[fleet.StateFailed],
		c[fleet.StateInterrupted], c[fleet.StateNotAttempted], pt, strings.ToLower(done), st, ft)
	if res.Duration > 0 {
		fmt.Fprintf(&b, " (%s)", res.Duration.Round(time.Millisecond))
	}
	b.WriteString("\n")
	if res.Stopped != "" {
		fmt.Fprintf(&b, "stopped: %s\n", res.Stopped)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// skipReasons lists the agent's reasons for the processes it skipped, each
// with the number of distinct processes: "target library not loaded (3)".
func skipReasons(procs []report.Process) string {
	pids := map[string]map[int]bool{}
	var order []string
	for _, pr := range procs {
		if pr.Result != report.Skipped {
			continue
		}
		r := pr.Reason
		if r == "" {
			r = "no reason given"
		}
		if pids[r] == nil {
			if len(order) == 8 {
				continue // enough to see what happened; the JSON has all
			}
			pids[r] = map[int]bool{}
			order = append(order, r)
		}
		pids[r][pr.PID] = true
	}
	parts := make([]string, len(order))
	for i, r := range order {
		parts[i] = fmt.Sprintf("%s (%d)", r, len(pids[r]))
	}
	return strings.Join(parts, "; ")
}

// writeReportText prints the fleet report: hosts, then patches.
func writeReportText(w io.Writer, rep fleet.Report) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPROCESSES\tPATCHED\tPATCH IDS")
	for _, h := range rep.Hosts {
		if h.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\terror: %s\n", escape.Text(h.Host), oneLine(h.Error))
			continue
		}
		ids := make([]string, 0, len(h.Patches))
		for id := range h.Patches {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var ps []string
		for _, id := range ids {
			ps = append(ps, fmt.Sprintf("%s(%d)", escape.Text(short(id)), h.Patches[id]))
		}
		list := strings.Join(ps, " ")
		if list == "" {
			list = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", escape.Text(h.Host), h.Processes, h.Patched, list)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "PATCH ID\tTARGET\tHOSTS\tPROCESSES\tCONTAINER")
	for _, pc := range rep.Patches {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", escape.Text(short(pc.ID)), escape.Text(pc.Target), pc.Hosts, pc.Processes, escape.Text(pc.Container))
	}
	if len(rep.Patches) == 0 {
		fmt.Fprintln(tw, "(no patches applied on any host)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func short(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// oneLine keeps a table cell on one line of at most about 300 bytes, its
// newlines written "; " and everything else a host controls escaped.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", "; ")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "..."
	}
	return escape.Text(s)
}
