#!/bin/sh
# prerm of the ulp package: on removal, stop preloading the runtime that is
# about to disappear, so programs started afterwards get no loader error.
set -e
if [ "$1" = remove ] && grep -qs '/usr/lib/[^ ]*/libpulp.so.0' /etc/ld.so.preload; then
	/usr/bin/ulp preload disable || true
fi
