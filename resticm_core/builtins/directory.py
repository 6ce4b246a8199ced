"""``kind: directory``: run-parts for a ``pre-backup.d`` style directory.

    hooks:
      pre_backup: /etc/resticm/hooks/pre-backup.d/          # short form (a directory)
      post_backup:
        - {kind: directory, path: hooks/post-backup.d, continue_on_error: true}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

import attrs

from ..hooks import Hook, HookContext
from ..hookspecs import hookimpl
from ..phases import HookResult


@attrs.frozen(kw_only=True)
class DirectoryHook(Hook):
    kind: ClassVar[str] = "directory"

    #: The directory; ``~`` expanded, relative to the config file's directory.
    path: str
    #: Run the remaining modules after one failed (the phase still fails).
    continue_on_error: bool = False

    def describe(self) -> str:
        return self.path

    def check(self, ctx: HookContext) -> list[str]:
        raise NotImplementedError  # TODO(helper): implement

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        raise NotImplementedError  # TODO(helper): implement


@hookimpl
def resticm_hook_types() -> Iterable[type[Hook]]:
    return [DirectoryHook]
