"""Whose lock is it: a restic lock of this host whose process is gone is a leftover.

Kept in the restic package (not in :mod:`resticm_core.lockcheck`, which uses the
facade) so that the facade can remove a dead lock without importing upward.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable


def pid_alive(pid: int) -> bool:
    """Does a process with this id exist (signal 0 probe)?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_dead_local_lock(
    hostname: str,
    pid: int,
    *,
    host: str | None = None,
    alive: Callable[[int], bool] = pid_alive,
) -> bool:
    """Is a lock of *hostname* and *pid* one of this host whose process is gone?

    Such a lock can only be a leftover (a restic killed with SIGKILL, an OOM kill
    of resticm): ``restic unlock`` removes it, and removes nothing else younger
    than 30 minutes.
    """
    return hostname == (host or socket.gethostname()) and not alive(pid)
