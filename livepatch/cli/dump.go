package cli

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"ulp/internal/escape"
	"ulp/livepatch/container"
)

// DumpSchema is the "schema" field of `ulp dump --json`.
const DumpSchema = "ulp.dump/v1"

type dumpOptions struct {
	revert bool
	json   bool
}

func newDumpCommand(g *globalOptions) *cobra.Command {
	var opts dumpOptions
	cmd := &cobra.Command{
		Use:   "dump FILE",
		Short: "Print the metadata of a livepatch container",
		Long: `dump prints the .ulp section of a livepatch container (.ulp.rev with
--revert): the patch id, the target's name and build-id, every replaced
function with its recorded offsets and mechanism, the data references, the
comments and the bug labels. --json prints one JSON object (schema ` + DumpSchema + `).`,
		Args: usageExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDump(opts, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&opts.revert, "revert", false, "dump the revert section .ulp.rev")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// dumpJSON is the output of `ulp dump --json`.
type dumpJSON struct {
	Schema           string `json:"schema"`
	Container        string `json:"container"`
	ContainerBuildID string `json:"container_build_id"`
	Section          string `json:"section"`
	// Format is "ulp", or "libpulp" for a section in SUSE libpulp's format.
	Format     string          `json:"format"`
	Kind       string          `json:"kind"`
	PatchID    string          `json:"patch_id"`
	Target     dumpTarget      `json:"target"`
	Functions  []dumpFunction  `json:"functions"`
	References []dumpReference `json:"references"`
	Comments   string          `json:"comments"`
	Labels     []string        `json:"labels"`
}

type dumpTarget struct {
	Name    string `json:"name"`
	BuildID string `json:"build_id"`
}

type dumpFunction struct {
	Old         string `json:"old"`
	New         string `json:"new"`
	OldOffset   uint64 `json:"old_offset"`
	NewOffset   uint64 `json:"new_offset"`
	Mechanism   string `json:"mechanism"`
	EntryOffset uint8  `json:"entry_offset"`
}

type dumpReference struct {
	TargetVar    string `json:"target_var"`
	PatchRef     string `json:"patch_ref"`
	TargetOffset uint64 `json:"target_offset"`
	PatchOffset  uint64 `json:"patch_offset"`
	TLS          bool   `json:"tls"`
}

func runDump(opts dumpOptions, path string, stdout io.Writer) error {
	c, err := container.Open(path)
	if err != nil {
		return usageError(err)
	}
	spec, section := c.Apply, container.SectionApply
	if opts.revert {
		spec, section = c.Revert, container.SectionRevert
	}
	d := dumpJSON{
		Schema:           DumpSchema,
		Container:        path,
		ContainerBuildID: hex.EncodeToString(c.BuildID),
		Section:          section,
		Format:           "ulp",
		Kind:             spec.Kind.String(),
		PatchID:          spec.ID.String(),
		Target:           dumpTarget{Name: spec.Target.Name, BuildID: hex.EncodeToString(spec.Target.BuildID)},
		Functions:        []dumpFunction{},
		References:       []dumpReference{},
		Comments:         spec.Comments,
		Labels:           append([]string{}, spec.Labels...),
	}
	if spec.Libpulp {
		d.Format = "libpulp"
	}
	for _, f := range spec.Funcs {
		d.Functions = append(d.Functions, dumpFunction{f.Old, f.New, f.OldOffset, f.NewOffset, f.Mechanism.String(), f.EntryOffset})
	}
	for _, r := range spec.Refs {
		d.References = append(d.References, dumpReference{r.TargetVar, r.PatchRef, r.TargetOffset, r.PatchOffset, r.TLS})
	}
	if opts.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	printDump(stdout, &d)
	return nil
}

func printDump(w io.Writer, d *dumpJSON) {
	fmt.Fprintf(w, "container:          %s\n", escape.Text(d.Container))
	fmt.Fprintf(w, "container build-id: %s\n", d.ContainerBuildID)
	fmt.Fprintf(w, "section:            %s (%s)\n", d.Section, d.Kind)
	if d.Format == "libpulp" {
		fmt.Fprintf(w, "format:             libpulp (pad functions; an endbr64 before the NOPs is read from the target when applied)\n")
	}
	fmt.Fprintf(w, "patch id:           %s\n", d.PatchID)
	fmt.Fprintf(w, "target:             %s\n", escape.Text(d.Target.Name))
	fmt.Fprintf(w, "target build-id:    %s\n", d.Target.BuildID)
	if d.Kind == container.Apply.String() {
		fmt.Fprintf(w, "functions:          %d\n", len(d.Functions))
		for _, f := range d.Functions {
			fmt.Fprintf(w, "  %s -> %s  old %#x  new %#x  %s entry+%d\n", escape.Text(f.Old), escape.Text(f.New), f.OldOffset, f.NewOffset, f.Mechanism, f.EntryOffset)
		}
		fmt.Fprintf(w, "references:         %d\n", len(d.References))
		for _, r := range d.References {
			tls := ""
			if r.TLS {
				tls = "  tls"
			}
			fmt.Fprintf(w, "  %s -> %s  target %#x  patch %#x%s\n", escape.Text(r.TargetVar), escape.Text(r.PatchRef), r.TargetOffset, r.PatchOffset, tls)
		}
	}
	labels := strings.Join(escape.Texts(d.Labels), " ")
	if labels == "" {
		labels = "(none)"
	}
	fmt.Fprintf(w, "labels:             %s\n", labels)
	fmt.Fprintf(w, "comments:\n")
	if d.Comments != "" {
		for _, l := range strings.Split(d.Comments, "\n") {
			fmt.Fprintf(w, "  %s\n", escape.Text(l))
		}
	}
}
