package cli

import (
	"ulp/fleet"
	"ulp/livepatch/sign"
)

// trustPolicy loads the policy folder of --trusted for the actions that
// upload containers to load (apply, push; nil otherwise, and when unset):
// an unreadable or unsafe folder, or an invalid key in it, is bad usage.
func (a *app) trustPolicy(action fleet.Action) (*sign.Policy, error) {
	if a.cfg.Trusted == "" || action != fleet.Apply && action != fleet.Push {
		return nil, nil
	}
	p, err := sign.LoadPolicy(a.cfg.Trusted)
	if err != nil {
		return nil, usageError(err)
	}
	a.log.Debug("trust policy", "dir", p.Dir, "keys", p.Len())
	return p, nil
}
