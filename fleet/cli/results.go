package cli

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"ulp/fleet"
)

// runSchema is the schema of the first record of a rollout's output and
// results file.
const runSchema = "ulpfleet.run/v1"

// maxRecordSize bounds one line of a results file (a host record carries
// the agent's records of every process, at most remote.DefaultMaxOutput per
// trigger); the file as a whole is read as a stream, without a bound.
const maxRecordSize = 256 << 20

// runRecord opens a rollout's NDJSON output and results file: which run
// it is, and what it does to which hosts, so that the file says what is
// left to do even when the controller died before the summary.
type runRecord struct {
	Schema  string    `json:"schema"`
	Type    string    `json:"type"` // "run"
	RunID   string    `json:"run_id"`
	Started time.Time `json:"started"`
	Action  string    `json:"action"`
	// Inventory is the inventory file's absolute path, Limit the --limit.
	Inventory string `json:"inventory"`
	Limit     string `json:"limit,omitempty"`
	// Hosts are the planned hosts, in plan order.
	Hosts      []string         `json:"hosts"`
	Containers []fleet.Artifact `json:"containers"`
	RevertAll  string           `json:"revert_all,omitempty"`
	Trusted    string           `json:"trusted,omitempty"`
	Activate   bool             `json:"activate,omitempty"`
}

// newRunRecord describes the run of p with the settings' inventory and
// limit, under a new run id.
func (a *app) newRunRecord(p *fleet.Plan) runRecord {
	var rnd [4]byte
	rand.Read(rnd[:])
	now := time.Now().UTC()
	inv, err := filepath.Abs(a.cfg.Inventory)
	if err != nil {
		inv = a.cfg.Inventory
	}
	r := runRecord{Schema: runSchema, Type: "run", RunID: now.Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:]),
		Started: now, Action: string(p.Action), Inventory: inv, Limit: a.cfg.Limit, Hosts: make([]string, 0, p.NumHosts()),
		Containers: p.Containers, RevertAll: p.RevertAll, Trusted: p.Trusted, Activate: p.Activate}
	if r.Containers == nil {
		r.Containers = []fleet.Artifact{}
	}
	for _, w := range p.Waves {
		for _, h := range w.Hosts {
			r.Hosts = append(r.Hosts, h.Host.Name)
		}
	}
	return r
}

// resultsWriter appends a run's records to its results file, each synced
// to disk before the host counts as done: a controller killed at any
// moment leaves a file that names every planned host and holds the record
// of every host that finished. The file is locked (flock) while the run
// writes it.
type resultsWriter struct {
	path string
	mu   sync.Mutex
	f    *os.File
	err  error // the first failed write; later ones are not tried
}

// errResultsBusy marks a results file that another run is writing.
var errResultsBusy = errors.New("is being written by another ulpfleet run in progress")

// createResults replaces the results file at path with one holding only
// run, locked for this run. It refuses a file that another run is writing
// (errResultsBusy).
func createResults(path string, run runRecord) (*resultsWriter, error) {
	if f, err := os.Open(path); err == nil {
		busy := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil
		f.Close()
		if busy {
			return nil, fmt.Errorf("%s %w", path, errResultsBusy)
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	line, err := json.Marshal(run)
	if err == nil {
		err = errors.Join(syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB), f.Chmod(0o644))
	}
	if err == nil {
		_, err = f.Write(append(line, '\n'))
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &resultsWriter{path: path, f: f}, nil
}

// append writes rec as one line and syncs it.
func (w *resultsWriter) append(rec any) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return w.write(append(line, '\n'))
}

func (w *resultsWriter) write(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if _, err := w.f.Write(b); err != nil {
		w.err = fmt.Errorf("results %s: %w", w.path, err)
	} else if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("results %s: %w", w.path, err)
	}
	return w.err
}

// finish appends the records of the hosts never started and the summary,
// and closes the file (releasing its lock). It returns the first error of
// any write.
func (w *resultsWriter) finish(p *fleet.Plan, res *fleet.Result) error {
	var b bytes.Buffer
	err := writeResultJSON(&b, p, res, true)
	if err == nil {
		err = w.write(b.Bytes())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(err, w.err, w.f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lastRun is what a results file says about its run.
type lastRun struct {
	Run runRecord
	// Retry lists the planned hosts without a record in state ok, in plan
	// order: failed, with process errors, interrupted, not attempted, or
	// in flight when the controller died.
	Retry []string
	// Recorded counts the host records; Finished is set when the file
	// ends with the run's summary.
	Recorded int
	Finished bool
}

// readResults reads a results file (the NDJSON of --json and --results) as
// a stream: the run record, host records, then the summary unless the run
// was killed before it. A file still locked by its run is refused.
func readResults(path string) (*lastRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil {
		return nil, fmt.Errorf("%s is being written by a ulpfleet run in progress", path)
	}
	return parseResults(path, f)
}

func parseResults(path string, r io.Reader) (*lastRun, error) {
	lr := &lastRun{}
	var state map[string]fleet.State
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxRecordSize)
	n, records := 0, 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var head struct{ Schema, Type string }
		if err := json.Unmarshal(line, &head); err != nil {
			return nil, fmt.Errorf("%s: line %d: not a results file: %w", path, n, err)
		}
		records++
		if lr.Finished {
			return nil, fmt.Errorf("%s: line %d: a record after the summary", path, n)
		}
		switch {
		case head.Schema == runSchema && head.Type == "run":
			if records != 1 {
				return nil, fmt.Errorf("%s: line %d: a second run record", path, n)
			}
			if err := json.Unmarshal(line, &lr.Run); err != nil {
				return nil, fmt.Errorf("%s: line %d: run record: %w", path, n, err)
			}
			state = make(map[string]fleet.State, len(lr.Run.Hosts))
			for _, h := range lr.Run.Hosts {
				if _, dup := state[h]; dup {
					return nil, fmt.Errorf("%s: line %d: host %q planned twice", path, n, h)
				}
				state[h] = fleet.StateNotAttempted
			}
		case records == 1:
			return nil, fmt.Errorf("%s: line %d: no run record first (not a results file, or written by an older ulpfleet)", path, n)
		case head.Schema == hostSchema && head.Type == "host":
			var rec struct {
				Host  string
				State fleet.State
			}
			if err := json.Unmarshal(line, &rec); err != nil {
				return nil, fmt.Errorf("%s: line %d: host record: %w", path, n, err)
			}
			if _, ok := state[rec.Host]; !ok {
				return nil, fmt.Errorf("%s: line %d: host %q is not a host of the run", path, n, rec.Host)
			}
			state[rec.Host] = rec.State
			lr.Recorded++
		case head.Schema == summarySchema && head.Type == "summary":
			lr.Finished = true
		default:
			return nil, fmt.Errorf("%s: line %d: not a record of a results file (schema %q)", path, n, head.Schema)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: line %d: %w", path, n+1, err)
	}
	if records == 0 {
		return nil, fmt.Errorf("%s: empty results file", path)
	}
	switch fleet.Action(lr.Run.Action) {
	case fleet.Apply, fleet.Revert, fleet.Push:
	default:
		return nil, fmt.Errorf("%s: action %q cannot be retried", path, lr.Run.Action)
	}
	for _, h := range lr.Run.Hosts {
		if state[h] != fleet.StateOK {
			lr.Retry = append(lr.Retry, h)
		}
	}
	return lr, nil
}
