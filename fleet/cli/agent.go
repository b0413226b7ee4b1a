package cli

// embeddedAgent returns the agent binary built into ulpfleet, or nil.
func embeddedAgent() []byte { return nil }
