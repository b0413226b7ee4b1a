package fleet

import (
	"cmp"
	"slices"
)

// PatchCount says how many hosts and processes carry one patch.
type PatchCount struct {
	ID        string   `json:"id"`
	Container string   `json:"container"`
	Target    string   `json:"target"`
	Hosts     int      `json:"hosts"`
	Processes int      `json:"processes"`
	HostNames []string `json:"host_names"`
}

// HostStatus is one host's line of a fleet report.
type HostStatus struct {
	Host string `json:"host"`
	// Processes with the runtime, and how many carry at least one patch.
	Processes int `json:"processes"`
	Patched   int `json:"patched"`
	// Patches counts processes per patch ID.
	Patches map[string]int `json:"patches"`
	Error   string         `json:"error,omitempty"`
}

// Report aggregates the `ulp patches --json` output of every host.
type Report struct {
	Hosts   []HostStatus `json:"hosts"`
	Patches []PatchCount `json:"patches"` // by ID
}

// Aggregate builds a Report from the results of a Status rollout.
func Aggregate(res *Result) Report {
	rep := Report{Hosts: make([]HostStatus, 0, len(res.Hosts))}
	byID := map[string]*PatchCount{}
	for _, hr := range res.Hosts {
		hs := HostStatus{Host: hr.Host, Patches: map[string]int{}}
		if hr.Err != nil {
			hs.Error = hr.Err.Error()
		} else if hr.State == StateNotAttempted {
			hs.Error = string(StateNotAttempted)
		}
		for _, p := range hr.Patches {
			hs.Processes++
			if len(p.Patches) > 0 {
				hs.Patched++
			}
			for _, ap := range p.Patches {
				pc, ok := byID[ap.ID]
				if !ok {
					pc = &PatchCount{ID: ap.ID, Container: ap.Container, Target: ap.Target}
					byID[ap.ID] = pc
				}
				pc.Processes++
				if hs.Patches[ap.ID] == 0 {
					pc.Hosts++
					pc.HostNames = append(pc.HostNames, hr.Host)
				}
				hs.Patches[ap.ID]++
			}
		}
		rep.Hosts = append(rep.Hosts, hs)
	}
	for _, pc := range byID {
		rep.Patches = append(rep.Patches, *pc)
	}
	slices.SortFunc(rep.Patches, func(a, b PatchCount) int { return cmp.Compare(a.ID, b.ID) })
	return rep
}
