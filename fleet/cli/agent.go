package cli

import "ulp/agentbin"

// embeddedAgent returns the agent binary built into ulpfleet, or nil when
// ulpfleet was built without one (go build instead of make).
func embeddedAgent() []byte {
	b, err := agentbin.Agent()
	if err != nil {
		return nil
	}
	return b
}
