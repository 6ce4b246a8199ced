"""Argument types of the ``resticm`` parser: a bad value is a usage error (exit 2).

argparse turns the ``ArgumentTypeError`` of these functions into
``resticm COMMAND: error: argument --sample: ...`` and exit status 2, before
anything runs, the way every other usage error is reported.
"""

from __future__ import annotations

import argparse
import math
import re

# What restic's --read-data-subset accepts: n/t (1 <= n <= t), x% (0 < x <= 100), or a size.
_FRACTION = re.compile(r"(\d+)/(\d+)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")
_SIZE = re.compile(r"\d+(?:\.\d+)?[KMGT]?", re.IGNORECASE)


def positive_int(text: str) -> int:
    """An integer >= 1 (``verify --sample``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_seconds(text: str) -> float:
    """A number of seconds >= 0 (``--lock-wait``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def duration_seconds(text: str) -> float:
    """A duration > 0 as the config writes one: ``90``, ``90s``, ``26h``, ``1h30m``."""
    from .converter import parse_duration  # lazy: cattrs is not needed to parse argv

    try:
        return parse_duration(text)
    except Exception as exc:  # ConfigValueError: its text says what is expected
        raise argparse.ArgumentTypeError(f"{exc} (e.g. 26h, 90m, 3600)") from None


def read_data_subset(text: str) -> str:
    """A value restic's ``check --read-data-subset`` accepts, checked before restic runs."""
    value = text.strip()
    fraction = _FRACTION.fullmatch(value)
    if fraction:
        part, whole = int(fraction[1]), int(fraction[2])
        if 1 <= part <= whole:
            return value
        raise argparse.ArgumentTypeError(f"N/M needs 1 <= N <= M, got {text!r}")
    percent = _PERCENT.fullmatch(value)
    if percent:
        if 0 < float(percent[1]) <= 100:
            return value
        raise argparse.ArgumentTypeError(
            f"a percentage must be above 0 and at most 100, got {text!r}"
        )
    if _SIZE.fullmatch(value) and float(re.sub(r"[KMGTkmgt]$", "", value)) > 0:
        return value
    raise argparse.ArgumentTypeError(
        f"expected N/M (e.g. 1/10), a percentage (e.g. 5%) or a size (e.g. 500M), got {text!r}"
    )
