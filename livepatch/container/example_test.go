package container_test

import (
	"fmt"
	"log"

	"ulp/livepatch/container"
)

func ExampleOpen() {
	c, err := container.Open("testdata/sample.so")
	if err != nil {
		log.Fatal(err)
	}
	a := c.Apply
	fmt.Println("target:", a.Target.Name)
	for _, f := range a.Funcs {
		fmt.Printf("%s -> %s at %#x (%s, entry+%d)\n", f.Old, f.New, f.OldOffset, f.Mechanism, f.EntryOffset)
	}
	fmt.Println("labels:", a.Labels)
	fmt.Println("revert id matches:", c.Revert.ID == a.ID)
	// Output:
	// target: libtarget.so.1
	// foo -> foo_lp at 0x117e (pad, entry+0)
	// labels: [CVE-2024-2961]
	// revert id matches: true
}
