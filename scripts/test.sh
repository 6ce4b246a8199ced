#!/bin/sh
# Install what the tests need and run the whole suite, then the type and lint checks.
# Extra arguments go to pytest (e.g. scripts/test.sh -k workflow).
#
# RESTIC_VERSIONS (default 0.14,0.18: Debian 12's and Debian 13's) lists the restic
# versions to test against. The whole suite runs with the first; the tests that run
# restic (marker `restic`, set in tests/conftest.py) run again with each other one,
# that restic first on PATH. A version is the system's restic when it matches, else
# the Debian package of its release, fetched by scripts/fetch-restic.sh into .cache/
# (not installed). E.g. RESTIC_VERSIONS=0.14 for one pass only.
set -eu
cd "$(dirname "$0")/.."
. scripts/_setup.sh
setup_machine '.[test]'
# PostgreSQL and MariaDB on 127.0.0.1 for plugins/resticm-dumps (Debian packages).
sh scripts/start-databases.sh
# Started: a missing server is now a failure, not a skip.
export RESTICM_REQUIRE_DATABASES=1

# The Debian release whose restic package is that version.
debian_suite() {
    case "$1" in
        0.14) echo bookworm ;;
        0.18) echo trixie ;;
        *) echo "test.sh: no Debian release known for restic $1 (known: 0.14, 0.18)" >&2; return 2 ;;
    esac
}

# The directory to put first on PATH for restic VERSION ("" for the system's restic).
restic_dir() {
    if restic version 2>/dev/null | grep -q "^restic $1\."; then
        echo ""
        return
    fi
    suite=$(debian_suite "$1") || return 2
    dir=$(sh scripts/fetch-restic.sh "$suite") || return 2
    if ! "$dir/restic" version | grep -q "^restic $1\."; then
        echo "test.sh: Debian $suite's restic is not $1: $("$dir/restic" version)" >&2
        return 2
    fi
    echo "$dir"
}

versions=${RESTIC_VERSIONS:-0.14,0.18}
status=0
first=1
summary=""
old_ifs=$IFS
IFS=,
for version in $versions; do
    IFS=$old_ifs
    dir=$(restic_dir "$version")
    pass_path=${dir:+$dir:}$PATH
    echo "==> restic $version: $(PATH=$pass_path restic version)"
    if [ "$first" -eq 1 ]; then
        echo "==> pytest (all tests)"
        selection=""
    else
        echo "==> pytest -m restic (the tests that run restic)"
        selection="-m restic"
    fi
    start=$(date +%s)
    # loadgroup: the tests of one database server (xdist_group) share a worker.
    # shellcheck disable=SC2086 # $selection is empty or two words
    if PATH=$pass_path .venv/bin/python -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider \
        $selection "$@"; then
        result=passed
    else
        result=FAILED
        status=1
    fi
    summary="$summary  restic $version: $result in $(($(date +%s) - start)) s${selection:+ ($selection)}
"
    first=0
    IFS=,
done
IFS=$old_ifs
printf '==> test passes\n%s' "$summary"

echo "==> mypy --strict resticm_core, then the plugins"
.venv/bin/python -m mypy
.venv/bin/python -m mypy --strict plugins/resticm-dumps/resticm_dumps plugins/resticm-apprise/resticm_apprise
echo "==> ruff"
.venv/bin/python -m ruff check resticm_core tests plugins
# The cost figures of docs/performance.md, for the log only: nothing is asserted (a
# CI machine's timing is not a test), and a failing benchmark does not fail the run.
# RESTICM_SKIP_BENCH=1 skips it.
if [ -z "${RESTICM_SKIP_BENCH:-}" ]; then
    echo "==> bench/run.py --quick (figures for the log, no assertion)"
    .venv/bin/python bench/run.py --quick --only startup,preflight,hooks,chatty,status \
        --output "${TMPDIR:-/tmp}/resticm-bench-results.json" ||
        echo "bench/run.py failed (not a test failure)"
fi
exit "$status"
