"""Resolve a path the way the kernel does, noting everything on the way that others could swap.

A file resticm executes (a hook) or reads as instructions (the config) is only as
safe as every directory the kernel looks a name up in while resolving its path,
and every symlink it follows: whoever can write one of those directories can put
another file, or another symlink, in place of the one that was checked. Checking
only the file and the directory named in the path (DESIGN §10's first rule) let a
root-owned hook reached through a symlink into a world-writable directory be
swapped between the check and the ``execve`` (issue 13, point 1).

:func:`open_trusted` walks the path one component at a time from ``/``, each step
``openat(dir_fd, name, O_PATH | O_NOFOLLOW)`` relative to the directory already
looked at, so the directory checked is the directory searched; symlinks are read
(``readlinkat``) and their targets walked the same way, relative or absolute, up
to 40 hops like Linux. It records as :class:`Unsafe`:

- a directory some name is looked up in that is not owned by one of *owners*;
- such a directory writable by group or others, unless it is sticky (``/tmp``):
  in a sticky directory others may add names but not replace ours, and the
  entries we go through there are owner-checked themselves;
- a symlink followed that is not owned by one of *owners* (in a sticky
  directory its owner could replace it; elsewhere the rule is kept simple).

The final object (file or directory) is returned open, with its ``fstat``, for the
caller's own checks (owner, mode, kind). When nothing on the way is unsafe, no one
but root and *owners* can change what the path resolves to, nor (the caller checks
this) the file's content, so executing or reading the path later reaches the very
inode that was checked: the path is stable, not merely checked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Collection, Iterator
from pathlib import Path

import attrs

#: Symlinks followed before giving up, as Linux's ELOOP limit.
MAX_SYMLINK_HOPS = 40
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)  # O_PATH: Linux; opening needs no read permission


@attrs.frozen
class Unsafe:
    """Something on the way to a file that someone else could replace."""

    #: The directory or symlink, as a resolved path (no symlink in it but its last part).
    path: Path
    st: os.stat_result
    #: A symlink followed (else a directory searched).
    symlink: bool
    #: Writable by group or others and not sticky (directories only).
    writable: bool
    #: Owned by none of the allowed owners.
    foreign: bool


@attrs.frozen
class Opened:
    """The object a path resolves to, open, and what was found unsafe on the way there."""

    #: O_PATH descriptor (or O_RDONLY when asked to read); closed by :func:`open_trusted`.
    fd: int
    #: The resolved path.
    path: Path
    #: ``fstat`` of :attr:`fd`.
    st: os.stat_result
    unsafe: tuple[Unsafe, ...]


def _mode_writable(st: os.stat_result) -> bool:
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)) and not st.st_mode & stat.S_ISVTX


@contextlib.contextmanager
def open_trusted(
    path: str | os.PathLike[str], *, owners: Collection[int], read: bool = False
) -> Iterator[Opened]:
    """Resolve *path* from ``/``, yielding the final object open and the unsafe parts seen.

    :param owners: uids whose directories and symlinks are trusted (root, the user).
    :param read: open a final regular file ``O_RDONLY`` (to read it) instead of ``O_PATH``.
    :raises OSError: a component is missing (``FileNotFoundError``), not a directory,
        not searchable, or too many symlinks; ``filename`` is *path*.
    """
    given = os.fspath(path)
    walk = _Walk(given, frozenset(owners))
    try:
        opened = walk.run(read=read)
    except OSError as exc:
        walk.close()
        raise OSError(exc.errno, exc.strerror, given) from None
    except BaseException:
        walk.close()
        raise
    try:
        yield opened
    finally:
        os.close(opened.fd)


class _Walk:
    """One resolution: the directory we are in (open), the names still to look up."""

    def __init__(self, given: str, owners: frozenset[int]) -> None:
        self.given = given
        self.owners = owners
        self.unsafe: list[Unsafe] = []
        self._seen: set[tuple[int, int]] = set()
        absolute = given if given.startswith("/") else os.path.join(os.getcwd(), given)
        self.pending = list(reversed(absolute.split("/")))
        self.hops = 0
        self.dir_fd = -1
        self.dir_path = "/"
        self._enter_root()

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def _enter_root(self) -> None:
        self.close()
        self.dir_fd = os.open("/", _O_PATH | os.O_DIRECTORY)
        self.dir_path = "/"

    def run(self, *, read: bool) -> Opened:
        while self.pending:
            name = self.pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                # Every directory above this one was searched (and checked) on the way down.
                parent = os.open("..", _O_PATH | os.O_DIRECTORY, dir_fd=self.dir_fd)
                os.close(self.dir_fd)
                self.dir_fd, self.dir_path = parent, os.path.dirname(self.dir_path)
                continue
            self._check_searched_directory()
            fd = os.open(name, _O_PATH | os.O_NOFOLLOW, dir_fd=self.dir_fd)
            st = os.fstat(fd)
            full = os.path.join(self.dir_path, name)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                self._follow(name, full, st)
            elif stat.S_ISDIR(st.st_mode):
                os.close(self.dir_fd)
                self.dir_fd, self.dir_path = fd, full
            elif self.pending:  # "file/..." or "file/": the kernel says ENOTDIR too
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            else:
                return self._final_file(name, full, fd, st, read=read)
        # The path ends in a directory (a ``.d`` hook directory, "dir/").
        fd, self.dir_fd = self.dir_fd, -1
        return Opened(fd=fd, path=Path(self.dir_path), st=os.fstat(fd), unsafe=tuple(self.unsafe))

    def _final_file(
        self, name: str, full: str, fd: int, st: os.stat_result, *, read: bool
    ) -> Opened:
        if read:
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                raise OSError(errno.EINVAL, "not a regular file")
            os.close(fd)
            # The same name in the same (open) directory; O_NOFOLLOW: if the name was
            # swapped for a symlink meanwhile (an unsafe directory), this fails.
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY, dir_fd=self.dir_fd)
            st = os.fstat(fd)
        self.close()
        return Opened(fd=fd, path=Path(full), st=st, unsafe=tuple(self.unsafe))

    def _follow(self, name: str, full: str, st: os.stat_result) -> None:
        self.hops += 1
        if self.hops > MAX_SYMLINK_HOPS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        if st.st_uid not in self.owners:
            self.unsafe.append(
                Unsafe(path=Path(full), st=st, symlink=True, writable=False, foreign=True)
            )
        target = os.readlink(name, dir_fd=self.dir_fd)
        if target.startswith("/"):
            self._enter_root()
        self.pending.extend(reversed(target.split("/")))

    def _check_searched_directory(self) -> None:
        st = os.fstat(self.dir_fd)
        key = (st.st_dev, st.st_ino)
        if key in self._seen:  # "a/../a/b", or two symlinks into one directory
            return
        self._seen.add(key)
        foreign = st.st_uid not in self.owners
        writable = _mode_writable(st)
        if foreign or writable:
            self.unsafe.append(
                Unsafe(
                    path=Path(self.dir_path),
                    st=st,
                    symlink=False,
                    writable=writable,
                    foreign=foreign,
                )
            )


def describe_unsafe(
    unsafe: Unsafe, *, subject: str, label: str, runs_as: str, where: str = ""
) -> list[str]:
    """The messages for one unsafe part, each naming it and its fix.

    :param subject: what is at stake, for the text (``hook /etc/x.sh``, ``config /etc/c.yaml``).
    :param label: how the part is named (``hook directory``, ``directory``, ``symlink``).
    :param runs_as: the user resticm runs as, for the ``chown`` fix (``root``).
    :param where: said after the part's path (`` (on the way to hook /etc/x.sh)``).
    """
    named = f"{label} {unsafe.path}{where}"
    messages = []
    if unsafe.writable:
        messages.append(
            f"{named} is writable by group or others, so anyone could put another file "
            f"in place of {subject} (fix: chmod go-w {unsafe.path})"
        )
    if unsafe.foreign:
        chown = "chown -h" if unsafe.symlink else "chown"
        messages.append(
            f"{named} is owned by uid {unsafe.st.st_uid}, neither root nor the current user, "
            f"so that user could put another file in place of {subject} "
            f"(fix: {chown} {runs_as} {unsafe.path})"
        )
    return messages
