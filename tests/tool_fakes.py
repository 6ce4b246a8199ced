"""Recording fakes of the external tools the hook examples call, first on PATH.

Each fake is a small ``#!/bin/sh`` script that appends its argv to a call log
(``<tool> <args...>``, one line a call) and behaves like the real tool as far as
the examples need: dumps print SQL ending with the real end markers, ``docker``
keeps its containers in a state directory, ``systemctl is-active`` answers from
a list, ``sudo -u USER cmd`` runs cmd. ``FAKE_FAIL`` (space separated) makes a
tool fail: ``mariadb-dump``, ``pg_dumpall``, ``mongodump``, ``wp``,
``docker-stop:NAME`` (stopping that container), ``docker-start:NAME``; ``mongodump-small``
writes a truncated archive.

The fakes read ``FAKE_LOG``, ``FAKE_STATE``, ``FAKE_FAIL`` and ``FAKE_ACTIVE``
from their environment: resticm passes its own environment to hooks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import attrs

_PRELUDE = r"""#!/bin/sh
tool=$(basename "$0")
printf '%s\n' "$tool${*:+ $*}" >> "$FAKE_LOG"
fails() { case " ${FAKE_FAIL:-} " in *" $1 "*) return 0;; esac; return 1; }
"""

_MARIADB = r"""
if fails mariadb-dump; then
    echo "-- MariaDB dump 10.19 (partial)"
    echo "mariadb-dump: Got error: 2002: Can't connect to local server through socket" >&2
    exit 2
fi
out=
for arg in "$@"; do case $arg in --result-file=*) out=${arg#--result-file=};; esac; done
dump() {
    echo "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB"
    echo "CREATE TABLE wp_posts (id int);"
    echo "INSERT INTO wp_posts VALUES (1),(2),(3);"
    echo "-- Dump completed on 2026-01-01  3:00:00"
}
if [ -n "$out" ]; then dump > "$out"; else dump; fi
"""

_PG_DUMPALL = r"""
if fails pg_dumpall; then
    echo "--"
    echo "pg_dumpall: error: connection to server on socket failed: No such file or directory" >&2
    exit 1
fi
out=
while [ $# -gt 0 ]; do case $1 in -f) out=$2; shift;; --file=*) out=${1#--file=};; esac; shift; done
dump() {
    echo "-- PostgreSQL database cluster dump"
    echo "CREATE ROLE app;"
    echo "CREATE TABLE orders (id int);"
    echo "-- PostgreSQL database cluster dump complete"
}
if [ -n "$out" ]; then dump > "$out"; else dump; fi
"""

_MONGODUMP = r"""
if fails mongodump; then
    echo "Failed: error connecting to db server: no reachable servers" >&2
    exit 1
fi
for arg in "$@"; do case $arg in --archive=*) out=${arg#--archive=};; esac; done
if fails mongodump-small; then printf 'x' > "$out"; exit 0; fi
head -c 4096 /dev/zero | tr '\0' 'm' > "$out"
"""

_SYSTEMCTL = r"""
if [ "${1:-}" = is-active ]; then
    unit=; for arg in "$@"; do unit=$arg; done
    case " ${FAKE_ACTIVE:-} " in *" $unit "*) exit 0;; esac
    exit 3
fi
"""

_SUDO = r"""
while [ $# -gt 0 ]; do
    case $1 in -u) shift 2;; -*) shift;; *) break;; esac
done
exec "$@"
"""

_WP = r"""
if fails wp; then echo "Error: Error establishing a database connection." >&2; exit 1; fi
for arg in "$@"; do
    case $arg in
        activate)
            touch "$FAKE_STATE/wp-maintenance"
            echo "Success: Activated Maintenance mode."; exit 0;;
        deactivate)
            if [ ! -e "$FAKE_STATE/wp-maintenance" ]; then
                echo "Error: Maintenance mode already deactivated." >&2; exit 1
            fi
            rm -f "$FAKE_STATE/wp-maintenance"
            echo "Success: Deactivated Maintenance mode."; exit 0;;
        is-active) [ -e "$FAKE_STATE/wp-maintenance" ]; exit $?;;
        option) echo '[{"option_name":"siteurl","option_value":"https://example.org"}]'; exit 0;;
        plugin) echo '[{"name":"akismet","status":"active","version":"5.3"}]'; exit 0;;
    esac
done
"""

_DOCKER = r"""
d="$FAKE_STATE/docker"
names() { for f in "$d"/*.state; do [ -e "$f" ] && basename "$f" .state; done; return 0; }
running() { [ "$(cat "$d/$1.state" 2>/dev/null)" = running ]; }
case ${1:-} in
ps)
    label=
    while [ $# -gt 0 ]; do case $1 in --filter) label=${2#label=}; shift;; esac; shift; done
    for n in $(names); do
        running "$n" || continue
        if [ -n "$label" ] && ! grep -qxF "$label" "$d/$n.labels" 2>/dev/null; then continue; fi
        echo "$n"
    done;;
stop)
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --time|-t) shift;;
        -*) ;;
        *)  if fails "docker-stop:$1"; then
                echo "Error response from daemon: cannot stop container: $1:" \
                     "tried to kill container, but did not receive an exit event" >&2
                exit 1
            fi
            echo exited > "$d/$1.state"; echo "$1";;
        esac
        shift
    done;;
start)
    shift
    for n in "$@"; do
        if fails "docker-start:$n"; then echo "Error: No such container: $n" >&2; exit 1; fi
        echo running > "$d/$n.state"; echo "$n"
    done;;
compose)
    shift
    while [ $# -gt 0 ]; do case $1 in -f|--file) shift 2;; *) break;; esac; done
    case ${1:-} in
    stop)    for n in $(names); do running "$n" && echo exited > "$d/$n.state"; done; true;;
    start)   for n in $(names); do echo running > "$d/$n.state"; done;;
    config)  printf 'services:\n  postgres:\n    image: postgres:16\n'
             printf '  webapp:\n    image: myapp:latest\n';;
    run)     shift; while [ $# -gt 0 ]; do case $1 in --*) shift;; *) break;; esac; done
             shift; exec "$@";;
    esac;;
volume)
    echo "stack_pgdata"; echo "stack_uploads"; echo "other_cache";;
esac
"""

TOOLS = {
    "mariadb-dump": _MARIADB,
    "pg_dumpall": _PG_DUMPALL,
    "mongodump": _MONGODUMP,
    "systemctl": _SYSTEMCTL,
    "sudo": _SUDO,
    "wp": _WP,
    "docker": _DOCKER,
}


@attrs.define
class FakeTools:
    """A bin directory of fakes, their call log and their state."""

    bin: Path
    log: Path
    state: Path

    def env(
        self,
        base: dict[str, str],
        *,
        fail: Iterable[str] = (),
        active: Iterable[str] = (),
        without: Iterable[str] = (),
    ) -> dict[str, str]:
        """*base* with the fakes first on PATH; tools in *without* are hidden."""
        for tool in without:
            (self.bin / tool).unlink(missing_ok=True)
        env = dict(base)
        env.update(
            PATH=f"{self.bin}{os.pathsep}{base.get('PATH', os.defpath)}",
            FAKE_LOG=str(self.log),
            FAKE_STATE=str(self.state),
            FAKE_FAIL=" ".join(fail),
            FAKE_ACTIVE=" ".join(active),
        )
        return env

    def calls(self, tool: str | None = None) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [ln for ln in lines if tool is None or ln.split(" ", 1)[0] == tool]

    def reset_calls(self) -> None:
        self.log.unlink(missing_ok=True)

    def add_container(self, name: str, *labels: str, running: bool = True) -> None:
        docker = self.state / "docker"
        docker.mkdir(parents=True, exist_ok=True)
        (docker / f"{name}.state").write_text("running\n" if running else "exited\n")
        (docker / f"{name}.labels").write_text("".join(f"{label}\n" for label in labels))

    def containers(self) -> dict[str, str]:
        docker = self.state / "docker"
        return {
            p.name.removesuffix(".state"): p.read_text().strip()
            for p in sorted(docker.glob("*.state"))
        }


def install_fakes(base: Path, tools: Iterable[str] = TOOLS) -> FakeTools:
    """Write the fakes into ``base/bin``; the call log and state live beside it."""
    bin_dir = base / "bin"
    bin_dir.mkdir(parents=True)
    for tool in tools:
        script = bin_dir / tool
        script.write_text(_PRELUDE + TOOLS[tool])
        script.chmod(0o755)
    state = base / "state"
    state.mkdir()
    return FakeTools(bin=bin_dir, log=base / "calls.log", state=state)
