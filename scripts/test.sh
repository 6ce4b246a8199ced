#!/bin/sh
# Install what the tests need and run the whole suite, then the type and lint checks.
# Extra arguments go to pytest (e.g. scripts/test.sh -k workflow).
set -eu
cd "$(dirname "$0")/.."
. scripts/_setup.sh
setup_machine '.[test]'
echo "==> restic: $(restic version)"
echo "==> pytest"
.venv/bin/python -m pytest -n 2 -q -p no:cacheprovider "$@"
echo "==> mypy --strict resticm_core"
.venv/bin/python -m mypy
echo "==> ruff"
.venv/bin/python -m ruff check resticm_core tests
