package remote_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"ulp/remote"
)

// Dial a host with strict host-key checking, push the agent and run it,
// telling a failed command apart from a failed connection.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := remote.Dial(ctx, remote.Config{
		Addr:       "web01.example.com",
		User:       "root",
		KnownHosts: []string{"/root/.ssh/known_hosts"},
		Identities: []string{"/root/.ssh/id_ed25519"},
	})
	switch {
	case errors.Is(err, remote.ErrHostKeyMismatch):
		log.Fatalf("refusing: %v", err) // possible interception
	case errors.Is(err, remote.ErrUnreachable):
		log.Fatalf("host down: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	defer c.Close()

	agent := []byte("...the static agent...")
	up, err := c.Upload(ctx, agent, "/var/lib/ulp/ulp", 0o755)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("agent skipped:", up.Skipped)

	res, err := c.Run(ctx, []string{"/var/lib/ulp/ulp", "patches", "--json"}, nil)
	var ee *remote.ExitError
	switch {
	case errors.As(err, &ee):
		fmt.Println("agent failed with status", ee.Code)
	case err != nil:
		log.Fatal(err) // transport
	default:
		fmt.Printf("%s", res.Stdout)
	}
}
