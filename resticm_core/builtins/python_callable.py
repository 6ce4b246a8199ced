"""``kind: python``: call ``module:function`` in-process with a HookContext.

    hooks:
      on_error: "python:mycompany.backup_hooks:alert"       # short form
      pre_backup:
        - {kind: python, callable: hooks:dump_databases, timeout: 600, isolate: true}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import attrs

from ..hooks import Hook, HookContext
from ..hookspecs import hookimpl
from ..phases import HookResult


@attrs.frozen(kw_only=True)
class PythonHook(Hook):
    kind: ClassVar[str] = "python"

    #: ``package.module:function`` (``pkgutil.resolve_name`` syntax).
    callable: str
    #: Run in a forked child that a timeout can kill, instead of in-process.
    isolate: bool = False
    #: A function given from code (``PythonHook.from_function``); not a config key.
    function: Callable[[HookContext], Any] | None = attrs.field(
        default=None, eq=False, repr=False, metadata={"yaml": False}
    )

    def describe(self) -> str:
        return f"python:{self.callable}"

    def check(self, ctx: HookContext) -> list[str]:
        raise NotImplementedError  # TODO(helper): implement

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        raise NotImplementedError  # TODO(helper): implement


@hookimpl
def resticm_hook_types() -> Iterable[type[Hook]]:
    return [PythonHook]
