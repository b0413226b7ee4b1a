package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"ulp/inventory"
	"ulp/livepatch/sign"
)

// Action is what a rollout does on each host.
type Action string

// The actions.
const (
	// Apply uploads the containers and applies them to every process that
	// has the runtime (`ulp trigger --json -p '*' C`), one container after the
	// other; with RevertAll the first trigger also reverts every patch on
	// that library in the same stop window (atomic replace).
	Apply Action = "apply"
	// Revert uploads the containers and reverts them, last first; with
	// RevertAll it then reverts every patch on that library.
	Revert Action = "revert"
	// Status runs `ulp patches --json` (no containers).
	Status Action = "status"
	// Push only uploads the agent and the containers (pre-staging before a
	// maintenance window); a later apply finds them there.
	Push Action = "push"
	// Messages runs `ulp messages --json -p '*'`: the runtime's message
	// ring of every process with the runtime (no containers).
	Messages Action = "messages"
	// Clean removes staging garbage under the host's lock: temporary files
	// of uploads that died (older than remote.StaleTemp) and agent
	// versions other than this controller's (older than that too).
	Clean Action = "clean"
	// Ping connects and runs a read-only preflight (architecture, kernel,
	// free space and mount options of the staging folder, the agent
	// versions there, the runtime library and the processes that have it
	// loaded); it changes nothing on hosts.
	Ping Action = "ping"
)

// DefaultStagingDir is where the agent and containers are stored on hosts,
// unless the setting or the host variable ulp_staging_dir says otherwise.
// It must be on a filesystem that allows exec.
const DefaultStagingDir = "/var/lib/ulp"

// The host lock: every trigger runs under `flock -w LockWait -E LockedExit
// STAGING/lock`, so a second rollout on the same host waits up to LockWait
// seconds, then fails with ErrLocked.
const (
	LockWait   = 60
	LockedExit = 75
)

// StagingVar is the host variable that overrides the staging folder.
const StagingVar = "ulp_staging_dir"

// Artifact is a file uploaded to hosts: the agent or a container.
type Artifact struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Source is the local file the artifact was read from, when it came
	// from one (recorded in results files, so that a retry can read it
	// again).
	Source string `json:"source,omitempty"`
	// PatchID is a container's patch id (what `ulp patches` and `status`
	// show for processes carrying it), not to be confused with SHA256, the
	// file's own hash, which names its staging folder on hosts.
	PatchID string `json:"patch_id,omitempty"`
	data    []byte
}

// NewArtifact returns the artifact called name (a base name) with data.
func NewArtifact(name string, data []byte) Artifact {
	sum := sha256.Sum256(data)
	return Artifact{Name: name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), data: data}
}

// Options say what to plan.
type Options struct {
	Action     Action
	Agent      Artifact
	Containers []Artifact
	// RevertAll is a library name (e.g. libcrypto.so.3) for --revert-all.
	RevertAll string
	// StagingDir is the absolute folder on hosts (DefaultStagingDir).
	StagingDir string
	// Canary lists the canary waves, each a host count ("1"), a percentage
	// of all hosts ("10%", truncated, at least 1) or a group
	// ("group:canary"). The remaining hosts form the last wave.
	Canary []string
	// Batch splits the hosts after the canaries into batches, Ansible's
	// serial: each a host count ("5") or a percentage of all hosts ("20%",
	// truncated, at least 1); the last size repeats. Empty: one batch.
	Batch []string
	// HealthCheck, when set, is a shell command run on each host after its
	// triggers (apply and revert); a non-zero exit fails the host (and so
	// counts for the canary gate).
	HealthCheck string
	// Sudo runs the agent with `sudo -n --` (never prompting); everything
	// else runs as the login user, who must be able to write the staging
	// folder.
	Sudo bool
	// Jump is the jump host of hosts without their own [JumpVar]; the plan
	// resolves each host's once ([HostPlan.Jump]), and that is what the
	// [Dialer] dials.
	Jump string
	// Trusted, when set, requires signed containers fleet-wide: NewPlan
	// refuses (ErrUntrusted) an apply or push of a container that the
	// policy does not verify, before anything is uploaded, and the agent
	// on each host checks again against the policy folder of the same
	// path there (`ulp trigger --trusted=DIR`).
	Trusted *sign.Policy
	// Activate makes the agent on each host also update its patch-on-start
	// folder (`ulp trigger --activate`), so that processes started there
	// later get the same change: apply installs the containers, revert
	// removes them.
	Activate bool
}

// ErrUntrusted marks a container refused by the controller's trust policy.
var ErrUntrusted = errors.New("refused by trust policy")

// Plan is the complete description of a rollout: Run follows it exactly and
// a dry run prints it.
type Plan struct {
	Action     Action     `json:"action"`
	Agent      Artifact   `json:"agent"`
	Containers []Artifact `json:"containers,omitempty"`
	RevertAll  string     `json:"revert_all,omitempty"`
	Sudo       bool       `json:"sudo,omitempty"`
	// Trusted is the trust policy folder (Options.Trusted) that the agent
	// on each host checks the containers against before loading them.
	Trusted string `json:"trusted,omitempty"`
	// Activate is Options.Activate.
	Activate bool `json:"activate,omitempty"`
	// HealthCheck is Options.HealthCheck.
	HealthCheck string `json:"health_check,omitempty"`
	Waves       []Wave `json:"waves"`
}

// Wave is a set of hosts run together; waves run one after the other.
type Wave struct {
	Name   string     `json:"name"`
	Canary bool       `json:"canary"`
	Hosts  []HostPlan `json:"hosts"`
}

// HostPlan is one host and the steps it runs, in order.
type HostPlan struct {
	Host inventory.Host `json:"host"`
	// Jump is the host's jump host ([JumpFor]), "" when reached directly.
	Jump  string `json:"jump,omitempty"`
	Steps []Step `json:"steps"`
}

// StepKind names a step.
type StepKind string

// The steps a host runs.
const (
	StepUpload    StepKind = "upload"    // upload an artifact (skipped when its sha256 is there)
	StepTrigger   StepKind = "trigger"   // run `ulp trigger --json ...`
	StepPatches   StepKind = "patches"   // run `ulp patches --json`
	StepMessages  StepKind = "messages"  // run `ulp messages --json -p '*'`
	StepPreflight StepKind = "preflight" // run the read-only preflight script
	StepHealth    StepKind = "health"    // run the health check command
	StepClean     StepKind = "clean"     // run the staging clean-up script
)

// Step is one step of a host.
type Step struct {
	Kind StepKind `json:"kind"`
	// Artifact and Path: what an upload step writes, and where.
	Artifact string `json:"artifact,omitempty"`
	Path     string `json:"path,omitempty"`
	// Argv is the command a trigger, patches, messages, preflight or health
	// step runs.
	Argv []string `json:"argv,omitempty"`
	art  *Artifact
	mode fs.FileMode
	lock string // the host lock a trigger step waits for
}

// ErrPlan marks invalid plan options.
var ErrPlan = errors.New("invalid plan")

// NewPlan plans opts over hosts (in the order given). It is pure: it does
// not connect anywhere.
func NewPlan(hosts []inventory.Host, opts Options) (*Plan, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrPlan}, args...)...))
	}
	switch opts.Action {
	case Apply:
		if len(opts.Containers) == 0 {
			bad("apply needs at least one container")
		}
	case Revert:
		if len(opts.Containers) == 0 && opts.RevertAll == "" {
			bad("revert needs containers or a library for --revert-all")
		}
	case Push:
		if opts.RevertAll != "" {
			bad("push takes no --revert-all")
		}
	case Status, Ping, Messages, Clean:
		if len(opts.Containers) > 0 || opts.RevertAll != "" {
			bad("%s takes no containers", opts.Action)
		}
	default:
		bad("unknown action %q", opts.Action)
	}
	if len(hosts) == 0 {
		bad("no hosts")
	}
	if opts.Agent.SHA256 == "" {
		bad("no agent binary")
	}
	if opts.RevertAll != "" && !validFileName(opts.RevertAll) {
		bad("--revert-all: %q is not a library file name", opts.RevertAll)
	}
	if opts.Agent.SHA256 != "" && !validSHA256(opts.Agent.SHA256) {
		bad("agent sha256 %q is not 64 hex digits", opts.Agent.SHA256)
	}
	seen := map[string]bool{}
	for _, c := range opts.Containers {
		if !validSHA256(c.SHA256) {
			bad("container %s: sha256 %q is not 64 hex digits", c.Name, c.SHA256)
		}
		if !validFileName(c.Name) {
			bad("container name %q is not a plain file name", c.Name)
		}
		if seen[c.SHA256] {
			bad("container %s given twice", c.Name)
		}
		seen[c.SHA256] = true
	}
	if opts.Trusted != nil {
		if !path.IsAbs(opts.Trusted.Dir) || path.Clean(opts.Trusted.Dir) != opts.Trusted.Dir {
			bad("trust policy folder %q must be a clean absolute path (the agent reads the same path on each host)", opts.Trusted.Dir)
		}
		if opts.Action == Apply || opts.Action == Push {
			for _, c := range opts.Containers {
				if _, err := opts.Trusted.Verify(bytes.NewReader(c.data), int64(len(c.data))); err != nil {
					errs = append(errs, fmt.Errorf("container %s: %w %s: %w", c.Name, ErrUntrusted, opts.Trusted.Dir, err))
				}
			}
		}
	}
	staging := opts.StagingDir
	if staging == "" {
		staging = DefaultStagingDir
	}
	waves, err := splitWaves(hosts, opts.Canary, opts.Batch)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p := &Plan{Action: opts.Action, Agent: opts.Agent, Containers: opts.Containers, RevertAll: opts.RevertAll,
		Sudo: opts.Sudo, HealthCheck: opts.HealthCheck, Activate: opts.Activate}
	if opts.Trusted != nil {
		p.Trusted = opts.Trusted.Dir
	}
	for _, w := range waves {
		for i, h := range w.Hosts {
			dir := staging
			if v, ok := h.Host.Vars[StagingVar]; ok {
				s, _ := v.(string)
				dir = s
			}
			if !path.IsAbs(dir) || path.Clean(dir) != dir || dir == "/" {
				bad("host %s: staging folder %q must be a clean absolute path", h.Host.Name, dir)
				continue
			}
			jump := JumpFor(h.Host, opts.Jump)
			if jump != "" {
				if _, _, err := ParseJump(jump); err != nil {
					bad("host %s: %v", h.Host.Name, err)
					continue
				}
			}
			w.Hosts[i].Jump = jump
			w.Hosts[i].Steps = p.steps(dir)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.Waves = waves
	return p, nil
}

// steps returns the steps of one host whose staging folder is dir.
func (p *Plan) steps(dir string) []Step {
	agentPath := path.Join(dir, "bin", "ulp-"+p.Agent.SHA256[:16])
	if p.Action == Ping {
		return []Step{{Kind: StepPreflight, Argv: []string{"sh", "-c", preflightScript, "preflight", dir, agentPath, p.Agent.SHA256[:16]}}}
	}
	if p.Action == Clean {
		return []Step{{Kind: StepClean, Argv: []string{"sh", "-c", cleanScript, "clean", dir, path.Base(agentPath),
			strconv.Itoa(LockWait), strconv.Itoa(LockedExit)}}}
	}
	// Uploads create the missing folders of their paths (remote.Client.Upload).
	steps := []Step{
		{Kind: StepUpload, Artifact: p.Agent.Name, Path: agentPath, art: &p.Agent, mode: 0o755},
	}
	paths := make([]string, len(p.Containers))
	for i := range p.Containers {
		c := &p.Containers[i]
		paths[i] = path.Join(dir, "patches", c.SHA256[:16], c.Name)
		steps = append(steps, Step{Kind: StepUpload, Artifact: c.Name, Path: paths[i], art: c, mode: 0o644})
	}
	// flock holds the host's lock for the trigger, so that two rollouts
	// never trigger on one host at once; -p '*' selects every process that
	// has the runtime loaded. With Sudo only the agent runs under sudo: the
	// login user owns the staging folder, the uploads and the lock.
	agent := []string{agentPath}
	if p.Sudo {
		agent = []string{"sudo", "-n", "--", agentPath}
	}
	lockPath := path.Join(dir, "lock")
	lock := []string{"flock", "-w", strconv.Itoa(LockWait), "-E", strconv.Itoa(LockedExit), lockPath}
	trigger := func(args ...string) Step {
		argv := append(append(lock, agent...), "trigger", "--json", "-p", "*")
		if p.Activate {
			argv = append(argv, "--activate")
		}
		return Step{Kind: StepTrigger, Argv: append(argv, args...), lock: lockPath}
	}
	switch p.Action {
	case Apply:
		var trusted []string
		if p.Trusted != "" {
			trusted = []string{"--trusted=" + p.Trusted}
		}
		for i, cp := range paths {
			if i == 0 && p.RevertAll != "" {
				steps = append(steps, trigger(append(trusted, "--revert-all="+p.RevertAll, cp)...))
			} else {
				steps = append(steps, trigger(append(trusted, cp)...))
			}
		}
	case Revert:
		for i := len(paths) - 1; i >= 0; i-- {
			steps = append(steps, trigger("--revert", paths[i]))
		}
		if p.RevertAll != "" {
			steps = append(steps, trigger("--revert-all="+p.RevertAll))
		}
	case Status:
		steps = append(steps, Step{Kind: StepPatches, Argv: append(agent, "patches", "--json")})
	case Messages:
		steps = append(steps, Step{Kind: StepMessages, Argv: append(agent, "messages", "--json", "-p", "*")})
	}
	if p.HealthCheck != "" && (p.Action == Apply || p.Action == Revert) {
		steps = append(steps, Step{Kind: StepHealth, Argv: []string{"sh", "-c", p.HealthCheck}})
	}
	return steps
}

// preflightScript prints key=value lines about a host; $1 is the staging
// folder, $2 the agent's path there, $3 the agent's version (its sha256
// prefix). It only reads. agents lists the agent versions in the staging
// folder; runtime_library is where the loader finds libpulp.so.0 (empty:
// not installed), preload whether /etc/ld.so.preload names it.
const preflightScript = `d=$1 a=$2
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
p=$d
while [ ! -e "$p" ]; do p=$(dirname "$p"); done
echo "staging_exists=$([ -d "$d" ] && echo yes || echo no)"
echo "free_kib=$(df -Pk "$p" | awk 'NR==2 {print $4}')"
echo "mount_options=$(findmnt -no OPTIONS --target "$p" 2>/dev/null)"
echo "agent_version=$3"
echo "agent=$([ -x "$a" ] && echo present || echo missing)"
echo "agents=$(ls "$d/bin" 2>/dev/null | sed -n 's/^ulp-\([0-9a-f]*\)$/\1/p' | tr '\n' ' ' | sed 's/ $//')"
echo "runtime_library=$(ldconfig -p 2>/dev/null | awk '/libpulp\.so\.0 / {print $NF; exit}')"
echo "preload=$(grep -qs libpulp /etc/ld.so.preload && echo yes || echo no)"
n=0
for m in /proc/[0-9]*/maps; do grep -qs 'libpulp\.so' "$m" && n=$((n+1)); done
echo "runtime_processes=$n"`

// cleanScript removes the staging garbage of folder $1 under its lock
// (waiting $3 seconds, else exit $4): temporary files of uploads
// (".NAME.tmp-*", also .gz) and agents other than $2 (bin/ulp-*), both
// only when older than 10 minutes (remote.StaleTemp), so that an upload
// of another controller in progress keeps its files. It prints each path
// removed; a missing folder has nothing to remove.
const cleanScript = `d=$1 keep=$2
[ -d "$d" ] || exit 0
exec 9>>"$d/lock" || exit 1
flock -w "$3" -E "$4" 9 || exit $?
find "$d" -xdev -type f -name '.*.tmp-*' -mmin +10 -print -delete
for f in "$d"/bin/ulp-*; do
	[ -f "$f" ] && [ "${f##*/}" != "$keep" ] || continue
	if [ -n "$(find "$f" -prune -mmin +10)" ]; then rm -f -- "$f" && echo "$f"; fi
done`

// splitWaves puts hosts into the canary waves described by specs, then the
// rest in batches.
func splitWaves(hosts []inventory.Host, specs, batch []string) ([]Wave, error) {
	left := hosts
	var waves []Wave
	var errs []error
	for i, spec := range specs {
		spec = strings.TrimSpace(spec)
		var take, rest []inventory.Host
		switch {
		case strings.HasPrefix(spec, "group:"):
			g := strings.TrimPrefix(spec, "group:")
			for _, h := range left {
				if contains(h.Groups, g) {
					take = append(take, h)
				} else {
					rest = append(rest, h)
				}
			}
			if len(take) == 0 {
				errs = append(errs, fmt.Errorf("%w: canary %q: no remaining host is in group %q", ErrPlan, spec, g))
			}
		default:
			n, err := count("canary", spec, len(hosts), true)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			n = min(n, len(left))
			take, rest = left[:n], left[n:]
		}
		if len(take) > 0 {
			waves = append(waves, Wave{Name: fmt.Sprintf("canary %d", i+1), Canary: true, Hosts: hostPlans(take)})
		}
		left = rest
	}
	var sizes []int
	for _, b := range batch {
		n, err := count("batch", strings.TrimSpace(b), len(hosts), false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sizes = append(sizes, n)
	}
	if len(sizes) == 0 {
		if len(left) > 0 {
			name := "all"
			if len(waves) > 0 {
				name = "rest"
			}
			waves = append(waves, Wave{Name: name, Hosts: hostPlans(left)})
		}
		return waves, errors.Join(errs...)
	}
	for i := 0; len(left) > 0; i++ {
		n := min(sizes[min(i, len(sizes)-1)], len(left))
		waves = append(waves, Wave{Name: fmt.Sprintf("batch %d", i+1), Hosts: hostPlans(left[:n])})
		left = left[n:]
	}
	return waves, errors.Join(errs...)
}

// count parses "N" or "P%" of total hosts (Ansible's truncation, at least
// 1). Only canaries may be 0 (none).
func count(what, spec string, total int, zeroOK bool) (int, error) {
	if pct, ok := strings.CutSuffix(spec, "%"); ok {
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || p <= 0 || p > 100 {
			return 0, fmt.Errorf("%w: %s %q: a percentage must be in (0, 100]", ErrPlan, what, spec)
		}
		return max(1, int(p*float64(total)/100)), nil
	}
	n, err := strconv.Atoi(spec)
	if err != nil || n < 0 || (n == 0 && !zeroOK) {
		want := "a host count or a percentage"
		if zeroOK {
			want = "a host count, a percentage or group:NAME"
		}
		return 0, fmt.Errorf("%w: %s %q: want %s", ErrPlan, what, spec, want)
	}
	return n, nil
}

func hostPlans(hosts []inventory.Host) []HostPlan {
	out := make([]HostPlan, len(hosts))
	for i, h := range hosts {
		out[i] = HostPlan{Host: h}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, e := range s {
		if e == v {
			return true
		}
	}
	return false
}

// validFileName reports whether s is a plain file name.
func validFileName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00\n\r") && len(s) <= 255
}

func validSHA256(s string) bool {
	_, err := hex.DecodeString(s)
	return len(s) == 64 && err == nil
}

// NumHosts returns the number of hosts in the plan.
func (p *Plan) NumHosts() int {
	n := 0
	for _, w := range p.Waves {
		n += len(w.Hosts)
	}
	return n
}
