package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
)

func main() {
	var o options
	flag.StringVar(&o.config, "config", "packaging/nfpm.yaml", "nfpm configuration `FILE`")
	flag.StringVar(&o.root, "root", "", "the installed tree `DIR` (make install DESTDIR=DIR PREFIX=/usr)")
	flag.StringVar(&o.version, "version", "", "package `VERSION`")
	flag.StringVar(&o.out, "o", "", "write the package to `FILE`")
	flag.Parse()
	if o.root == "" || o.version == "" || o.out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: mkdeb [-config FILE] -root DIR -version VERSION -o FILE")
		os.Exit(2)
	}
	if err := build(o); err != nil {
		fmt.Fprintf(os.Stderr, "mkdeb: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	config, root, version, out string
}

func build(o options) error {
	root, err := filepath.Abs(o.root)
	if err != nil {
		return err
	}
	config, err := filepath.Abs(o.config)
	if err != nil {
		return err
	}
	vars := map[string]string{
		"ROOT":    root,
		"VERSION": o.version,
		"ARCH":    runtime.GOARCH,
	}
	cfg, err := nfpm.ParseFileWithEnvMapping(config, func(k string) string { return vars[k] })
	if err != nil {
		return fmt.Errorf("%s: %w", config, err)
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return err
	}
	info = nfpm.WithDefaults(info)
	for _, s := range []*string{&info.Scripts.PreInstall, &info.Scripts.PostInstall, &info.Scripts.PreRemove, &info.Scripts.PostRemove} {
		if *s != "" && !filepath.IsAbs(*s) {
			*s = filepath.Join(filepath.Dir(config), *s)
		}
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	f, err := os.Create(o.out)
	if err != nil {
		return err
	}
	info.Target = o.out
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(o.out)
		return err
	}
	return f.Close()
}
