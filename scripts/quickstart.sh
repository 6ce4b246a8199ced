#!/bin/sh
# The main job on an embedded default: install what is needed, then back up a sample
# directory into a local repository with the quickstart hooks (examples/quickstart/).
set -eu
cd "$(dirname "$0")/.."
. scripts/_setup.sh
setup_machine .
exec examples/quickstart/run.sh "$@"
