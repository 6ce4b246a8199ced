#!/bin/sh
# pre_backup: save the list of installed packages into dump/ next to the config,
# a directory the config backs up. A non-zero exit skips this host's backup.
set -eu
dump="$(dirname "$RESTICM_CONFIG")/dump"
mkdir -p "$dump"
if command -v dpkg >/dev/null 2>&1; then
    dpkg --get-selections > "$dump/packages.txt"
else
    echo "dpkg not available on $(hostname)" > "$dump/packages.txt"
fi
echo "pre-backup: package list saved to $dump/packages.txt"
