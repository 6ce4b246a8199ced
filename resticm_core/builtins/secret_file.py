"""Secret references ``${file:/path}``: the content of a file, trailing newline stripped.

The file must be as private as a password file should be: owned by root or the user
resticm runs as, not readable nor writable by group or others, reached through no
directory or symlink someone else could swap (the config's own rules,
:mod:`resticm_core.trusted_path`). Anything else is refused with the fix, since a
secret others can read is no secret and one others can replace is theirs.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from resticm_core.errors import SecretReferenceError
from resticm_core.hookspecs import hookimpl
from resticm_core.trusted_path import describe_unsafe, open_trusted

#: Larger is not a secret but a mistake (a path to a disk image...).
MAX_SECRET_FILE = 64 * 1024


def read_secret_file(path: Path, *, what: str, check_mode: bool = True) -> str:
    """The content of the secret file *path*, trailing newlines stripped.

    :param what: names the file in messages (``file /etc/resticm/s3.key``).
    :param check_mode: refuse a file group or others may read.
    :raises SecretReferenceError: missing, unreadable, unsafe or too large.
    """
    uid = os.geteuid()
    owners = frozenset({0, uid})
    try:
        with open_trusted(path, owners=owners, read=True) as opened:
            st = opened.st
            problems = [
                message
                for part in opened.unsafe
                for message in describe_unsafe(
                    part,
                    subject=what,
                    label="symlink" if part.symlink else "directory",
                    runs_as=str(uid),
                    where=f" (on the way to {what})",
                )
            ]
            if not stat.S_ISREG(st.st_mode):
                raise SecretReferenceError(f"{what} is not a regular file")
            mode = stat.S_IMODE(st.st_mode)
            if st.st_uid not in owners:
                problems.append(
                    f"{what} is owned by uid {st.st_uid}, neither root nor the current "
                    f"user (fix: chown {uid} {path})"
                )
            if check_mode and mode & 0o077:
                problems.append(
                    f"{what} is readable or writable by group or others (mode {mode:04o}; "
                    f"fix: chmod 600 {path})"
                )
            if problems:
                raise SecretReferenceError("; ".join(problems))
            if st.st_size > MAX_SECRET_FILE:
                raise SecretReferenceError(f"{what} is larger than {MAX_SECRET_FILE} bytes")
            with open(opened.fd, encoding="utf-8", closefd=False) as stream:
                text = stream.read(MAX_SECRET_FILE + 1)
    except OSError as exc:
        raise SecretReferenceError(f"cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SecretReferenceError(f"{what} is not UTF-8 text") from None
    return text.rstrip("\r\n")


@hookimpl
def resticm_secret_reference(scheme: str, reference: str, environ: Mapping[str, str]) -> str | None:
    if scheme != "file":
        return None
    path = Path(os.path.expanduser(reference))
    if not path.is_absolute():
        raise SecretReferenceError(
            f"{reference}: write an absolute path (a secret file is looked up from /)"
        )
    return read_secret_file(path, what=f"file {path}")
