"""Exponential backoff, once: the waits between attempts and a wait a signal can cut short.

restic's lock retries and transient-failure retries (:mod:`resticm_core.restic.facade`)
and the notifiers' resends (:mod:`resticm_core.notify.dispatch`) all wait
``first * factor**attempt`` seconds, capped; a run that got SIGTERM must not sit
out a 60-second pause, so the wait ends as soon as the cancel event is set.
"""

from __future__ import annotations

import threading
import time

import attrs


@attrs.frozen
class Backoff:
    """``first``, ``first * factor``, ``first * factor**2``... seconds, at most ``cap``."""

    first: float
    factor: float = 2.0
    cap: float | None = None

    def delay(self, attempt: int) -> float:
        """The wait before retry number *attempt* + 1 (*attempt* 0: the first retry)."""
        wait = self.first * self.factor ** max(0, attempt)
        return wait if self.cap is None else min(wait, self.cap)


def pause(seconds: float, cancel: threading.Event | None = None) -> bool:
    """Sleep *seconds*; False as soon as *cancel* is set (then do not retry)."""
    if cancel is None:
        time.sleep(max(0.0, seconds))
        return True
    return not cancel.wait(max(0.0, seconds))
