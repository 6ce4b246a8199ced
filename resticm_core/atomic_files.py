"""Write a file atomically: a temporary file in the same directory, fsync, rename.

A reader (node_exporter, a status page, the next run) sees the old file or the new
one, never half of either, and a full disk leaves the old file in place. The
temporary file is created by :func:`tempfile.mkstemp` (``O_EXCL``, mode 0600), so a
symlink planted at a predictable name is never followed, and it is removed when
anything fails.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(
    path: Path,
    text: str,
    *,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
) -> None:
    """Replace *path* by *text* (UTF-8), with *mode* and, when given, *owner* (uid, gid).

    The directory must exist; callers create it with the mode they need.
    """
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        if owner is not None:
            os.chown(temp, *owner)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
