"""Numbers for humans: sizes and durations as restic prints them, and a restic ``--json``
status message as one short progress line for a terminal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(size: float) -> str:
    """``1288490188`` -> ``1.2 GiB`` (binary units, as restic prints them)."""
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_duration(seconds: float) -> str:
    """``31`` -> ``0:31``, ``3725`` -> ``1:02:05``."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _number(status: Mapping[str, Any], key: str) -> float:
    value = status.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def format_progress(status: Mapping[str, Any]) -> str:
    """One short line from a ``backup --json`` status message, for a terminal.

    ``42% 1234 files 1.2 GiB/2.8 GiB ETA 0:31``
    """
    percent = min(100, max(0, int(_number(status, "percent_done") * 100)))
    parts = [f"{percent}%", f"{int(_number(status, 'files_done'))} files"]
    done, total = _number(status, "bytes_done"), _number(status, "total_bytes")
    parts.append(f"{format_bytes(done)}/{format_bytes(total)}" if total else format_bytes(done))
    if "seconds_remaining" in status:
        parts.append(f"ETA {format_duration(_number(status, 'seconds_remaining'))}")
    return " ".join(parts)
