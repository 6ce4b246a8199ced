"""``kind: script``: run one executable file directly (no shell).

    hooks:
      pre_backup: /etc/resticm/hooks/pre-backup.sh          # short form
      post_backup:
        - {kind: script, path: hooks/post.sh, args: ["--quiet"], timeout: 600}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

import attrs

from ..hooks import Hook, HookContext
from ..hookspecs import hookimpl
from ..phases import HookResult


@attrs.frozen(kw_only=True)
class ScriptHook(Hook):
    kind: ClassVar[str] = "script"

    #: The executable; ``~`` expanded, relative to the config file's directory.
    path: str
    #: Arguments passed to it (the path itself is never split on spaces).
    args: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.path

    def check(self, ctx: HookContext) -> list[str]:
        raise NotImplementedError  # TODO(helper): implement

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        raise NotImplementedError  # TODO(helper): implement


@hookimpl
def resticm_hook_types() -> Iterable[type[Hook]]:
    return [ScriptHook]
