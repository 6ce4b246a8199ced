#!/bin/sh
# Install what the tests need and run the whole suite, then the type and lint checks.
# Extra arguments go to pytest (e.g. scripts/test.sh -k workflow).
set -eu
cd "$(dirname "$0")/.."
. scripts/_setup.sh
setup_machine '.[test]'
echo "==> restic: $(restic version)"
# PostgreSQL and MariaDB on 127.0.0.1 for plugins/resticm-dumps (Debian packages).
sh scripts/start-databases.sh
# Started: a missing server is now a failure, not a skip.
export RESTICM_REQUIRE_DATABASES=1
echo "==> pytest"
# loadgroup: the tests of one database server (xdist_group) share a worker.
.venv/bin/python -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider "$@"
echo "==> mypy --strict resticm_core, then the plugins"
.venv/bin/python -m mypy
.venv/bin/python -m mypy --strict plugins/resticm-dumps/resticm_dumps plugins/resticm-apprise/resticm_apprise
echo "==> ruff"
.venv/bin/python -m ruff check resticm_core tests plugins
