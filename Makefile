# ulp: user-space live patching. `make` builds, `make test` runs every test
# tier (installing what the tests need first, when run as root), `make demo`
# shows a live patch on a running program.
GO ?= go
CC ?= cc
BUILD := build
# VERSION is the version of ulp, ulpfleet's embedded agent, the runtime and the package.
VERSION ?= 0.1.0
# The git commit ulpfleet is built from (ulpfleet version), 12 hex digits.
REVISION ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
FUZZTIME ?= 60s
# CI and `make test` turn a missing test capability into a failure, not a skip.
ULP_TEST_REQUIRE ?= all
export ULP_TEST_REQUIRE
export ULP_BUILD_DIR := $(abspath $(BUILD))

LIBPULP_CFLAGS := -fPIC -fvisibility=hidden -O2 -g -Wall -Wextra -Werror \
	-fno-stack-protector -fcf-protection=full -D_GNU_SOURCE -DULP_RUNTIME_VERSION='"$(VERSION)"'
LIBPULP_LDFLAGS := -shared -nostartfiles -Wl,--version-script=libpulp/libpulp.map \
	-Wl,-soname,libpulp.so.0 -Wl,--build-id -Wl,-z,now -Wl,-z,relro
LIBPULP_SRCS := $(wildcard libpulp/*.c)
GO_SRCS := $(shell find . -name '*.go' -not -path './build/*') go.mod go.sum

# Packages the tests and `make bench` need, from Debian (libelf1 and
# libjson-c5: the prebuilt libpulp 0.3.17 that make bench runs side by side).
APT_PACKAGES := gcc g++ make binutils libc6-dev libssl-dev openssh-server openssh-client \
	iproute2 procps strace util-linux nginx openssl sudo libelf1 libjson-c5 \
	dpkg-dev patch perl

.PHONY: all build deps deb-src test test-glibc test-unit fuzz fuzz-short bench demo fleet-demo vet clean install uninstall deb

all: build

build: $(BUILD)/libpulp.so.0 $(BUILD)/ulp $(BUILD)/ulpfleet

$(BUILD)/libpulp.so.0: $(LIBPULP_SRCS) $(wildcard libpulp/*.h) libpulp/libpulp.map
	@mkdir -p $(BUILD)
	$(CC) $(LIBPULP_CFLAGS) $(LIBPULP_LDFLAGS) -o $@ $(LIBPULP_SRCS)

$(BUILD)/ulp: $(GO_SRCS)
	@mkdir -p $(BUILD)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w -X ulp/livepatch/cli.Version=$(VERSION)' -o $@ ./cmd/ulp

# ulpfleet embeds the static agent it uploads to hosts: build/ulp-agent is
# ulp without the commands that build and package livepatches (-tags
# fleetagent: no ulp build, no ulp deb), a megabyte less on every host;
# agentbin/bin/ulp is a copy of it.
$(BUILD)/ulp-agent: $(GO_SRCS)
	@mkdir -p $(BUILD)
	CGO_ENABLED=0 $(GO) build -trimpath -tags fleetagent -ldflags='-s -w -X ulp/livepatch/cli.Version=$(VERSION)' -o $@ ./cmd/ulp

$(BUILD)/ulpfleet: $(BUILD)/ulp-agent $(GO_SRCS)
	@mkdir -p agentbin/bin
	cp $(BUILD)/ulp-agent agentbin/bin/ulp
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-X ulp/fleet/cli.Revision=$(REVISION)' -o $@ ./cmd/ulpfleet

# deps installs the Debian packages the tests need (only when missing; needs root).
# A policy-rc.d keeps apt from starting the services it installs (sshd, nginx):
# tests start their own, on loopback addresses only.
deps: deb-src
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			policy=/usr/sbin/policy-rc.d; made=""; \
			if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy; chmod 755 $$policy; made=1; fi; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
			rc=$$?; [ -z "$$made" ] || rm -f $$policy; [ $$rc = 0 ] || exit $$rc; \
		else echo "warning: missing packages:$$missing (run make test as root to install them)"; fi; \
	fi

# deb-src gives apt the source packages of the Debian release (the tests of
# `ulp build` run `apt-get source openssl=VERSION`): when no deb-src entry
# exists, it writes one of our own for the release and its security updates
# (needs root), then refreshes apt's lists.
DEB_SRC_LIST := /etc/apt/sources.list.d/ulp-deb-src.sources
deb-src:
	@if ! apt-get indextargets --format '$$(IDENTIFIER)' 2>/dev/null | grep -qx Sources; then \
		if [ "$$(id -u)" = 0 ]; then \
			. /etc/os-release; echo "adding deb-src entries for $$VERSION_CODENAME to $(DEB_SRC_LIST)"; \
			printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' \
				"Suites: $$VERSION_CODENAME $$VERSION_CODENAME-updates" 'Components: main' \
				'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' \
				'Types: deb-src' 'URIs: http://deb.debian.org/debian-security' \
				"Suites: $$VERSION_CODENAME-security" 'Components: main' \
				'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > $(DEB_SRC_LIST) && \
			apt-get update -qq; \
		else echo "warning: apt has no deb-src entries (run make test as root to add them)"; fi; \
	fi

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# test also runs the fleet's unit tier under the race detector (issue 6).
test: deps build vet
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 -timeout 10m -skip '^TestE2E_' ./inventory/... ./remote/... ./fleet/...
	$(MAKE) --no-print-directory fuzz FUZZTIME=2000x

# test-glibc builds a livepatch from a fix of Debian's glibc 2.36-9+deb12u14
# against the stock libc.so.6 of 2.36-9+deb12u7 and applies it live
# (builder/debiantest/glibc_test.go). Kept out of `make test`: the first run
# fetches glibc's source and configures it the way debian/rules does, which
# needs glibc's build dependencies and minutes (docs/building-livepatches.md).
GLIBC_APT_PACKAGES := gawk bison gperf libselinux1-dev libaudit-dev libcap-dev systemtap-sdt-dev
test-glibc: build
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(APT_PACKAGES) $(GLIBC_APT_PACKAGES)"
	$(GO) test -tags glibc -run '^TestGlibc_' -count=1 -timeout 40m -v ./builder/debiantest/

# fuzz runs every Fuzz target of the module for FUZZTIME each. Minimizing a
# new interesting input is capped at 1s: Go's byte minimizer is quadratic, and
# on an ELF seed of a few KiB it would otherwise use the whole FUZZTIME.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s $$pkg || exit 1; \
		done; \
	done

# bench: `make bench BENCHFLAGS='-threads 1,8,64,256 -funcs 5000'` for larger
# sizes (go run ./internal/tools/bench -h lists the flags). deps: the fleet
# section needs sshd, the side-by-side section libpulp's libraries.
bench: deps build
	$(GO) run ./internal/tools/bench $(BENCHFLAGS)

demo: deps build
	$(GO) run ./internal/tools/demo

# fleet-demo: a local fleet of real sshd hosts (root); `make fleet-demo
# FLEETDEMOFLAGS='-hosts 32'` for another size.
fleet-demo: deps build
	$(GO) run ./internal/tools/fleetdemo $(FLEETDEMOFLAGS)

clean:
	rm -rf $(BUILD) agentbin/bin/ulp

# ---- install, uninstall, deb (docs/operating.md) ----------------------------
# `make install` puts the binaries in BINDIR, the runtime in LIBDIR (Debian's
# multiarch folder), man pages generated from the binaries' --help, cobra's
# shell completions and the docs under DESTDIR+PREFIX. `make deb` packages
# exactly what `make install DESTDIR=... PREFIX=/usr` writes.
PREFIX ?= /usr/local
DESTDIR ?=
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BINDIR := $(PREFIX)/bin
LIBDIR := $(PREFIX)/lib/$(MULTIARCH)
DATADIR := $(PREFIX)/share
MANDIR := $(DATADIR)/man
DEB_ROOT ?= $(BUILD)/deb-root
DEB_ARCH = $(shell $(GO) env GOARCH)
DEB_OUT ?= $(BUILD)/ulp_$(VERSION)_$(DEB_ARCH).deb

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DATADIR)/doc/ulp \
		$(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/vendor-completions \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d
	install -m 0755 $(BUILD)/ulp $(BUILD)/ulpfleet $(DESTDIR)$(BINDIR)/
	install -m 0644 $(BUILD)/libpulp.so.0 $(DESTDIR)$(LIBDIR)/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DATADIR)/doc/ulp/
	SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)} \
		$(GO) run ./internal/tools/mkman -o $(DESTDIR)$(MANDIR)/man1 -version $(VERSION)
	for b in ulp ulpfleet; do \
		$(BUILD)/$$b completion bash > $(DESTDIR)$(DATADIR)/bash-completion/completions/$$b && \
		$(BUILD)/$$b completion zsh > $(DESTDIR)$(DATADIR)/zsh/vendor-completions/_$$b && \
		$(BUILD)/$$b completion fish > $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/$$b.fish || exit 1; \
	done
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

# uninstall removes what install wrote; on the live system it first stops
# preloading this runtime, so programs started afterwards get no loader error.
uninstall:
	@if [ -z "$(DESTDIR)" ] && grep -qs '$(LIBDIR)/libpulp.so.0' /etc/ld.so.preload; then \
		$(BINDIR)/ulp preload disable; fi
	rm -f $(DESTDIR)$(BINDIR)/ulp $(DESTDIR)$(BINDIR)/ulpfleet $(DESTDIR)$(LIBDIR)/libpulp.so.0 \
		$(DESTDIR)$(MANDIR)/man1/ulp.1.gz $(DESTDIR)$(MANDIR)/man1/ulp-*.1.gz \
		$(DESTDIR)$(MANDIR)/man1/ulpfleet.1.gz $(DESTDIR)$(MANDIR)/man1/ulpfleet-*.1.gz \
		$(DESTDIR)$(DATADIR)/bash-completion/completions/ulp $(DESTDIR)$(DATADIR)/bash-completion/completions/ulpfleet \
		$(DESTDIR)$(DATADIR)/zsh/vendor-completions/_ulp $(DESTDIR)$(DATADIR)/zsh/vendor-completions/_ulpfleet \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d/ulp.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/ulpfleet.fish
	rm -rf $(DESTDIR)$(DATADIR)/doc/ulp
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

deb: build
	rm -rf $(DEB_ROOT)
	$(MAKE) --no-print-directory $(foreach f,ulp ulpfleet libpulp.so.0,-o $(BUILD)/$(f)) \
		install DESTDIR=$(abspath $(DEB_ROOT)) PREFIX=/usr
	$(GO) run ./internal/tools/mkdeb -root $(DEB_ROOT) -version $(VERSION) -o $(DEB_OUT)
	@echo "built $(DEB_OUT)"
