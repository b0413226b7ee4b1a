package fleet_test

import (
	"fmt"
	"os"

	"ulp/fleet"
	"ulp/inventory"
)

// A plan puts the canary first and lists every step of every host; a dry
// run prints it, and Rollout.Run follows it exactly.
func ExampleNewPlan() {
	hosts := []inventory.Host{
		{Name: "web01", Addr: "192.0.2.1", Port: 22, User: "root", Groups: []string{"all", "canary"}},
		{Name: "web02", Addr: "192.0.2.2", Port: 22, User: "root", Groups: []string{"all"}},
	}
	p, err := fleet.NewPlan(hosts, fleet.Options{
		Action:     fleet.Apply,
		Agent:      fleet.NewArtifact("ulp", []byte("the agent binary")),
		Containers: []fleet.Artifact{fleet.NewArtifact("fix.so", []byte("a container"))},
		Canary:     []string{"group:canary"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range p.Waves {
		fmt.Printf("%s: %d host(s), first %s\n", w.Name, len(w.Hosts), w.Hosts[0].Host.Name)
	}
	p.WriteText(os.Stdout)
	// Output:
	// canary 1: 1 host(s), first web01
	// rest: 1 host(s), first web02
	// plan: apply 1 container on 2 hosts in 2 waves
	//   agent ulp sha256:4a4d598f8a8d9493 16 bytes
	//   container fix.so sha256:e447a0e505e59aa0 11 bytes
	// wave 1: canary 1 (1 host)
	//   web01  192.0.2.1:22  root
	//     upload ulp -> /var/lib/ulp/bin/ulp-4a4d598f8a8d9493 (skipped when the sha256 matches)
	//     upload fix.so -> /var/lib/ulp/patches/e447a0e505e59aa0/fix.so (skipped when the sha256 matches)
	//     run flock -w 60 -E 75 /var/lib/ulp/lock /var/lib/ulp/bin/ulp-4a4d598f8a8d9493 trigger --json -p '*' /var/lib/ulp/patches/e447a0e505e59aa0/fix.so
	// wave 2: rest (1 host)
	//   web02  192.0.2.2:22  root
	//     upload ulp -> /var/lib/ulp/bin/ulp-4a4d598f8a8d9493 (skipped when the sha256 matches)
	//     upload fix.so -> /var/lib/ulp/patches/e447a0e505e59aa0/fix.so (skipped when the sha256 matches)
	//     run flock -w 60 -E 75 /var/lib/ulp/lock /var/lib/ulp/bin/ulp-4a4d598f8a8d9493 trigger --json -p '*' /var/lib/ulp/patches/e447a0e505e59aa0/fix.so
}
