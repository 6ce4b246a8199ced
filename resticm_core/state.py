"""Deep-check state: when each repository last passed a ``restic check --read-data``.

Keyed by the repository's own id (``restic cat config`` → ``id``), not by its URL:
a repository reached through another URL (a moved mount, an ``s3:`` endpoint
written differently) keeps its history, and two repositories never share one.
The file lives in the user's state directory, apart from the configuration
(``resticm context list`` never shows it); ``RESTICM_STATE_DIR`` overrides it:

* root: ``/var/lib/resticm/state.json``
* others: ``$XDG_STATE_HOME/resticm/state.json``, else ``~/.local/state/resticm/state.json``

Writes are atomic (temporary file + ``os.replace``), the directory is 0700 and
the file 0600. An unreadable or corrupt file counts as "never checked", so a
deep check runs rather than being skipped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomic_files import atomic_write

log = logging.getLogger("resticm_core")

STATE_FILE = "state.json"
#: Overrides the state directory (tests, containers, several instances side by side).
STATE_DIR_ENV = "RESTICM_STATE_DIR"
_DAY = 86400.0


def default_state_dir(environ: Mapping[str, str] | None = None, euid: int | None = None) -> Path:
    """The state directory of the effective user (see the module docstring)."""
    env = os.environ if environ is None else environ
    uid = os.geteuid() if euid is None else euid
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    if uid == 0:
        return Path("/var/lib/resticm")
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "resticm"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / "resticm"


class DeepCheckState:
    """Read and record deep checks per repository id.

    :param state_dir: where ``state.json`` lives; default :func:`default_state_dir`.
    :param clock: seconds since the epoch (tests pass a fixed one).
    """

    def __init__(self, state_dir: Path | None = None, *, clock: Any = time.time) -> None:
        self.path = (state_dir or default_state_dir()) / STATE_FILE
        self._clock = clock

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("deep-check state %s is unreadable (%s): treated as empty", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def last_deep_check(self, repository_id: str) -> float | None:
        """When *repository_id* last passed a deep check (epoch seconds), or None."""
        entry = self._load().get("deep_check", {}).get(repository_id)
        if isinstance(entry, dict) and isinstance(entry.get("time"), int | float):
            return float(entry["time"])
        return None

    def deep_checks(self) -> dict[str, tuple[float, str]]:
        """Every recorded deep check: repository id -> (epoch seconds, backend name)."""
        entries = self._load().get("deep_check", {})
        found: dict[str, tuple[float, str]] = {}
        for repo_id, entry in entries.items() if isinstance(entries, dict) else ():
            if isinstance(entry, dict) and isinstance(entry.get("time"), int | float):
                found[str(repo_id)] = (float(entry["time"]), str(entry.get("name", "")))
        return found

    def is_due(self, repository_id: str, interval_days: int) -> bool:
        """Is a deep check due? Never when *interval_days* <= 0; always without a record."""
        if interval_days <= 0:
            return False
        last = self.last_deep_check(repository_id)
        return last is None or self._clock() > last + interval_days * _DAY

    def record_deep_check(self, repository_id: str, name: str) -> None:
        """Record a successful deep check now. *name* is informational (the backend name)."""
        data = self._load()
        checks = data.setdefault("deep_check", {})
        if not isinstance(checks, dict):
            checks = data["deep_check"] = {}
        checks[repository_id] = {"time": self._clock(), "name": name}
        self._write(data)

    def _write(self, data: Mapping[str, Any]) -> None:
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(data, indent=2, sort_keys=True), mode=0o600)


def repository_id(config_json: str) -> str | None:
    """The ``id`` of a repository from ``restic cat config`` output, or None."""
    try:
        value = json.loads(config_json)
    except ValueError:
        return None
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, str) and found else None


__all__ = ["DeepCheckState", "default_state_dir", "repository_id"]
