"""``resticm config init [PATH]``: a commented starter configuration.

The file is created 0600 (it will hold or point at a password) and never
replaces an existing one unless asked (``--force``). It loads as it is: the
test suite loads it with :func:`~resticm_core.config_file.load_config`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .config_file import DEFAULT_ETC_DIR, USER_CONFIG
from .errors import UsageError

STARTER = """\
# resticm configuration (docs/configuration.md lists every key).
# Editors with the YAML language server check this file against the schema:
#   resticm config schema > {schema}
# yaml-language-server: $schema={schema}

# Where restic stores the backups (a path, sftp:, s3:, b2:, rest:...).
repository: /srv/restic-repo
# The repository password, read from a private (0600) file. Or: password_command.
password_file: {password_file}

# What to back up.
directories:
  - /etc
  - /home
exclude_patterns:
  - "*.tmp"
  - "/home/*/.cache"

# How many snapshots forget keeps (0 or "" turns a rule off).
retention:
  keep_daily: 7
  keep_weekly: 4
  keep_monthly: 12
  keep_yearly: 5

# restic options for every repository (a backend may set its own):
# options:
#   s3.storage-class: STANDARD_IA
# limit_upload: 10240          # KiB/s
# compression: max             # auto, off, max
# extra_args:
#   backup: [--one-file-system, --exclude-caches]

# Copies of every snapshot, each with its own policy if needed:
# backends:
#   offsite:
#     repository: s3:https://s3.example.com/bucket/restic
#     password_file: /etc/resticm/offsite-password
#     env:
#       AWS_ACCESS_KEY_ID: ...
#       AWS_SECRET_ACCESS_KEY: ...
#     forget: false            # append-only / object lock: never forget nor prune
# copy_to_backends: [offsite]

# Scripts around the backup (docs/hooks.md):
# hooks:
#   pre_backup:
#     - /etc/resticm/hooks/pre-backup.sh
#   on_error:
#     - /etc/resticm/hooks/alert.sh

# notifications:
#   enabled: true
#   notify_on_error: true
#   providers:
#     - type: ntfy
#       url: https://ntfy.sh/my-backups

logging:
  file: {log_file}
  level: info
"""


def default_path(environ: Mapping[str, str]) -> Path:
    """``/etc/resticm/config.yaml`` for root, else ``~/.config/resticm/config.yaml``."""
    if os.geteuid() == 0:
        return DEFAULT_ETC_DIR / "config.yaml"
    return Path(environ.get("HOME") or str(Path.home())) / USER_CONFIG


def starter_text(path: Path) -> str:
    """The starter config for a file at *path* (its neighbours named next to it)."""
    directory = path.parent
    return STARTER.format(
        schema=directory / "resticm.schema.json",
        password_file=directory / "password",
        log_file=(
            "/var/log/resticm/resticm.log"
            if os.geteuid() == 0
            else directory / "resticm.log"
        ),
    )


def write_starter(path: Path, *, force: bool = False) -> Path:
    """Write the starter config at *path* (mode 0600); UsageError if it exists and not *force*."""
    if path.is_dir():
        raise UsageError(f"{path} is a directory: give the path of the file to write")
    if path.exists() and not force:
        raise UsageError(f"{path} already exists: not overwritten (use --force to replace it)")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(fd, "w", encoding="utf-8") as handle:
            handle.write(starter_text(path))
        os.chmod(tmp, 0o600)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the file appeared meanwhile: never replaced
            except FileExistsError:
                raise UsageError(
                    f"{path} already exists: not overwritten (use --force to replace it)"
                ) from None
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


__all__ = ["STARTER", "default_path", "starter_text", "write_starter"]
