//go:build !fleetagent

package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"ulp/builder/debpkg"
	"ulp/internal/escape"
)

type debOptions struct {
	output     string
	name       string
	version    string
	maintainer string
	dependsOn  []string
	debs       []string
	unpinned   bool
}

func newDebCommand(g *globalOptions) *cobra.Command {
	var opts debOptions
	cmd := &cobra.Command{
		Use:   "deb [-o OUT.deb] [--name PKG] [--version V] [--library-deb FILE.deb] LIVEPATCH.so...",
		Short: "Wrap livepatch containers into a Debian package that applies them",
		Long: `deb writes a Debian package that delivers the livepatch containers
LIVEPATCH.so... through apt. It installs them under
` + debpkg.Root + `/PKG/LIBRARY/ and its maintainer scripts run ulp:

  postinst (configure)  ulp trigger --activate --revert-all=LIBRARY on the
                        package's containers for each target LIBRARY: every
                        running process with the runtime, and the
                        patch-on-start folder; the livepatches already on
                        LIBRARY (those of an older version of the package)
                        are replaced in the same stop
  postinst (triggered)  the library package was upgraded (a dpkg trigger on
                        its file): the containers leave the patch-on-start
                        folder, the running processes keep their patches
  prerm (remove)        ulp trigger --activate --revert: reverted in every
                        process and removed from the patch-on-start folder

A process that cannot be patched is reported in apt's output and does not
fail the installation. The package depends on ulp and on the package that
holds each target library, at that version or later (an exact pin would keep
apt-get upgrade from installing the library's own fix); its postinst applies
nothing unless that exact version is installed. That package is the one
installed with the target's build-id (dpkg-query -S), or the --library-deb
FILE.deb the containers were built against (a file of it must have the
target's build-id), or as --depends-on names it. The package provides and
conflicts with ulp-livepatch-buildid-BUILDID for each target build-id: two
livepatch packages for one library build are never installed together.

The name defaults to ulp-livepatch-SOURCE-VERSION (the library's source
package and version, e.g. ulp-livepatch-openssl-3.0.17-1-deb12u2), the
version to 1 (raise it for a package that replaces an earlier one), the
output to NAME_VERSION_amd64.deb. The description lists each container's
target, build-id and bug labels (CVE-...). The .deb is written atomically.
` + exitStatusHelp,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError(errors.New("deb needs at least one LIVEPATCH.so"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDeb(cmd, g, opts, args, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.output, "output", "o", "", "write the package to `FILE` (default NAME_VERSION_amd64.deb)")
	f.StringVar(&opts.name, "name", "", "the package `NAME` (default ulp-livepatch-SOURCE-VERSION)")
	f.StringVar(&opts.version, "version", "1", "the package's `VERSION`")
	f.StringVar(&opts.maintainer, "maintainer", "", "the Maintainer field, `\"NAME <EMAIL>\"` (default \"$DEBFULLNAME <$DEBEMAIL>\")")
	f.StringArrayVar(&opts.dependsOn, "depends-on", nil, "the library package the containers were built for, `PKG=VERSION`, taken as given (repeatable)")
	f.StringArrayVar(&opts.debs, "library-deb", nil, "the library package `FILE.deb` the containers were built against, checked by build-id (repeatable)")
	f.BoolVar(&opts.unpinned, "unpinned", false, "depend on no library package (a target library that no package installed; needs --name)")
	return cmd
}

func runDeb(cmd *cobra.Command, g *globalOptions, opts debOptions, args []string, w io.Writer) error {
	o := debpkg.Options{Name: opts.name, Version: opts.version, Maintainer: opts.maintainer, Debs: opts.debs,
		Unpinned: opts.unpinned, Out: opts.output}
	for _, d := range opts.dependsOn {
		pkg, version, err := debpkg.ParseDependency(d)
		if err != nil {
			return usageError(fmt.Errorf("--depends-on %s: %w", d, err))
		}
		o.Libraries = append(o.Libraries, debpkg.Library{Package: pkg, Version: version})
	}
	pkg, err := debpkg.Build(cmd.Context(), args, o)
	switch {
	case errors.Is(err, debpkg.ErrWrite):
		return err
	case err != nil:
		return usageError(err)
	}
	if g.quiet {
		return nil
	}
	fmt.Fprintf(w, "wrote %s\n", pkg.Out)
	fmt.Fprintf(w, "  Package: %s\n  Version: %s\n  Depends: %s\n", pkg.Name, pkg.Version, strings.Join(pkg.Depends, ", "))
	for _, c := range pkg.Containers {
		line := fmt.Sprintf("  %s (%s", escape.Text(c.Path), escape.Text(c.Target.Name))
		if len(c.Labels) > 0 {
			line += ": " + strings.Join(escape.Texts(c.Labels), ", ")
		}
		fmt.Fprintln(w, line+")")
	}
	return nil
}
