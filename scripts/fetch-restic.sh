#!/bin/sh
# Fetch the restic of another Debian release for the test suite, without installing it:
#   scripts/fetch-restic.sh SUITE [CACHE_DIR]      e.g. scripts/fetch-restic.sh trixie
# prints the directory holding that release's `restic` binary (put it first on PATH).
#
# Debian's restic is one static Go binary, so the package of a newer release runs here.
# The apt source for SUITE is derived from this machine's own Debian sources
# (/etc/apt/sources.list.d/debian.sources, deb822; or /etc/apt/sources.list), so no
# host name is written anywhere: the mirror is the one the machine already uses. apt
# runs with private state, cache and source lists under CACHE_DIR (default: the
# checkout's .cache/, gitignored): the system's package lists and apt state are not
# touched. The Release file is verified as for any apt source: the stanza keeps its
# Signed-By (debian-archive-keyring, which on Debian 12 also carries the trixie keys),
# and the .deb is checked against the signed Packages hashes; nothing is ever
# downloaded unauthenticated. The extracted binary is kept: the next run is offline.
set -eu

suite=${1:?usage: fetch-restic.sh SUITE [CACHE_DIR]}
root=${2:-"$(cd "$(dirname "$0")/.." && pwd)/.cache"}
dir="$root/restic-$suite"
bin="$dir/root/usr/bin/restic"

if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
    echo "$dir/root/usr/bin"
    exit 0
fi

apt_dir="$dir/apt"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/preferences.d" \
    "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$dir/download"
: >"$apt_dir/sources.list"

# The machine's main Debian stanza(s) (the one naming the release's own codename, not
# -security/-updates), with Suites replaced by SUITE; URIs, Components, Signed-By kept.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || { echo "fetch-restic: no VERSION_CODENAME in /etc/os-release" >&2; exit 2; }
sources="$apt_dir/sources.list.d/$suite.sources"
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    awk -v want="$codename" -v suite="$suite" '
        function flush() {
            if (keep) { printf "%s", out; print "Suites: " suite; print "" }
            out = ""; keep = 0
        }
        /^[ \t]*$/ { flush(); next }
        /^#/ { next }
        /^Suites:/ {
            n = split(substr($0, 8), s, /[ \t]+/)
            for (i = 1; i <= n; i++) if (s[i] == want) keep = 1
            next
        }
        /^(Types|URIs|Components|Signed-By|Architectures):/ { out = out $0 "\n"; next }
        /^[ \t]/ { out = out $0 "\n"; next }   # continuation (an inline Signed-By key)
        END { flush() }
    ' /etc/apt/sources.list.d/debian.sources >"$sources"
elif [ -r /etc/apt/sources.list ]; then
    # one-line format: deb [options] URI SUITE COMPONENTS...
    awk -v want="$codename" -v suite="$suite" '
        $1 == "deb" {
            i = 2; opts = ""
            if ($2 ~ /^\[/) { while ($i !~ /\]$/) { opts = opts $i " "; i++ } opts = opts $i " "; i++ }
            if ($(i + 1) != want) next
            line = "deb " opts $i " " suite
            for (j = i + 2; j <= NF; j++) line = line " " $j
            print line
        }
    ' /etc/apt/sources.list >"$apt_dir/sources.list"
fi
if ! grep -q . "$sources" 2>/dev/null && ! grep -q . "$apt_dir/sources.list"; then
    echo "fetch-restic: no Debian source for '$codename' found to derive '$suite' from" >&2
    exit 2
fi

apt() {
    apt-get -q \
        -o Dir::State="$apt_dir/state" \
        -o Dir::State::status=/var/lib/dpkg/status \
        -o Dir::Cache="$apt_dir/cache" \
        -o Dir::Etc::SourceList="$apt_dir/sources.list" \
        -o Dir::Etc::SourceParts="$apt_dir/sources.list.d" \
        -o Dir::Etc::Preferences=/dev/null \
        -o Dir::Etc::PreferencesParts="$apt_dir/preferences.d" \
        -o APT::Default-Release= \
        "$@"
}

echo "==> fetching restic from Debian $suite into $dir" >&2
# Package lists only for this one private source; stdout goes to stderr so that the
# script's own stdout is just the path.
apt update >&2
# As root, apt warns that the download into this directory runs unsandboxed (its
# _apt user cannot write here); the file is still checked against the signed lists.
(cd "$dir/download" && rm -f restic_*.deb && apt download restic >&2)
deb=$(ls "$dir/download"/restic_*.deb)
rm -rf "$dir/root"
dpkg-deb -x "$deb" "$dir/root"
"$bin" version >&2
# Only the binary is kept: the package lists and the .deb are not needed again.
rm -rf "$apt_dir/state/lists" "$apt_dir/cache" "$dir/download"
echo "$dir/root/usr/bin"
