package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"ulp/fleet"
	"ulp/inventory"
	"ulp/livepatch/container"
	"ulp/remote"
)

// Size limits of local files ulpfleet reads.
const (
	maxAgentSize     = 256 << 20
	maxContainerSize = 256 << 20
	maxListSize      = 64 << 20 // --limit @FILE
)

// errNoAgent is returned when ulpfleet has no agent to upload.
var errNoAgent = errors.New("no agent binary: ulpfleet was built without an embedded agent (build it with make) and --agent is not set")

// sshDialer builds the SSH dialer from the settings.
func sshDialer(cfg Config, log *slog.Logger) (fleet.Dialer, error) {
	base := remote.Config{
		User:           cfg.User,
		KnownHosts:     cfg.KnownHosts,
		Identities:     cfg.Identity,
		Agent:          len(cfg.Identity) == 0,
		ConnectTimeout: cfg.ConnectTimeout,
		Logger:         log, // Sudo is the plan's: only the agent runs under sudo

	}
	if cfg.AcceptNewHostKeys {
		base.HostKeyPolicy = remote.AcceptNew
	}
	if len(base.KnownHosts) == 0 || base.KnownHosts[0] == "" {
		return nil, usageError(errors.New("--known-hosts: no known_hosts file"))
	}
	// Once here rather than an auth_failed per host.
	if err := remote.CheckAuth(base); err != nil {
		return nil, usageError(fmt.Errorf("--identity: %w", err))
	}
	return fleet.SSHDialer{Base: base}, nil
}

// agentArtifact returns the agent to upload: --agent, else the embedded one.
func agentArtifact(cfg Config) (fleet.Artifact, error) {
	if cfg.Agent == "" {
		data := embeddedAgent()
		if len(data) == 0 {
			return fleet.Artifact{}, usageError(errNoAgent)
		}
		return fleet.NewArtifact("ulp", data), nil
	}
	data, err := readLimited(cfg.Agent, maxAgentSize)
	if err != nil {
		return fleet.Artifact{}, usageError(fmt.Errorf("--agent: %w", err))
	}
	return fleet.NewArtifact("ulp", data), nil
}

// readContainers reads and checks the livepatch containers named on the
// command line: an invalid container stops the command before any host is
// touched.
func readContainers(paths []string) ([]fleet.Artifact, error) {
	var out []fleet.Artifact
	var errs []error
	for _, p := range paths {
		data, err := readLimited(p, maxContainerSize)
		var cf *container.File
		if err == nil {
			cf, err = container.Read(bytes.NewReader(data))
			if err != nil {
				err = fmt.Errorf("%s: not a livepatch container: %w", p, err)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		art := fleet.NewArtifact(filepath.Base(p), data)
		art.PatchID = cf.Apply.ID.String()
		if art.Source, err = filepath.Abs(p); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, art)
	}
	if len(errs) > 0 {
		return nil, usageError(errors.Join(errs...))
	}
	return out, nil
}

func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return data, nil
}

// hosts loads the inventory and applies --limit.
func (a *app) hosts() ([]inventory.Host, error) {
	if a.cfg.Inventory == "" {
		return nil, usageError(errors.New("no inventory: set --inventory (or ULPFLEET_INVENTORY, or inventory: in the config file)"))
	}
	inv, err := inventory.Load(a.cfg.Inventory)
	if err != nil {
		return nil, usageError(err)
	}
	limit := a.cfg.Limit
	if file, ok := strings.CutPrefix(limit, "@"); ok {
		if limit, err = limitFromFile(file); err != nil {
			return nil, usageError(err)
		}
	}
	hs, err := inv.Select(limit)
	if err != nil {
		return nil, usageError(err)
	}
	return hs, nil
}

// limitFromFile reads the host patterns of --limit @FILE, one per line (#
// starts a comment). A results file is refused: `ulpfleet retry` is how
// the hosts of a run that did not succeed are run again.
func limitFromFile(path string) (string, error) {
	data, err := readLimited(path, maxListSize)
	if err != nil {
		return "", fmt.Errorf("--limit @%s: %w", path, err)
	}
	var terms []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "{") {
			return "", fmt.Errorf("--limit @%s: line %d: a results file, not a host list (ulpfleet retry --results %s reruns its failed hosts)", path, i+1, path)
		}
		terms = append(terms, line)
	}
	if len(terms) == 0 {
		return "", fmt.Errorf("--limit @%s: %w: the file lists no host", path, inventory.ErrNoMatch)
	}
	return strings.Join(terms, ","), nil
}
