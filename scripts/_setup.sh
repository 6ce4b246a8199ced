# Sourced by scripts/quickstart.sh and scripts/test.sh: installs what resticm needs
# on a fresh Debian machine and creates the project's virtualenv in .venv.
# Usage: setup_machine [extra pip spec], e.g. setup_machine '.[test]'
set -eu

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

setup_machine() {
    spec=${1:-.}
    missing=""
    command -v restic >/dev/null 2>&1 || missing="$missing restic"
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$missing python3-venv"
    case "$spec" in
        # the tests check generated units with systemd-analyze (package systemd)
        *test*)
            command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
            # tests/test_completion.py runs the generated zsh and fish completions
            command -v zsh >/dev/null 2>&1 || missing="$missing zsh"
            command -v fish >/dev/null 2>&1 || missing="$missing fish"
            ;;
    esac
    if [ -n "$missing" ]; then
        echo "==> installing Debian packages:$missing"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # shellcheck disable=SC2086 # word splitting of the package list is wanted
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
    if [ ! -x .venv/bin/python ]; then
        echo "==> creating .venv"
        python3 -m venv .venv
    fi
    echo "==> installing resticm_core ($spec) into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q -e "$spec"
    PATH="$PWD/.venv/bin:$PATH"
    export PATH
}
