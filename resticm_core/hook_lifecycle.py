"""The one lifecycle of a hook entry, owned by the engine.

    cancelled? -> check() -> dry_run()   (--dry-run, unless the kind is dry_run_safe)
                          -> run()       (otherwise)
               -> every result redacted

An executor implements ``run()`` (and optionally ``check()``, ``describe()``,
``dry_run()``); everything a kind could forget is decided here, once, for
builtin and third-party kinds alike:

- a run already interrupted starts nothing (``interrupted: not started``);
- the static checks run first, in every mode, so a dry run fails on them as a real run;
- ``run()`` is not called in a dry run unless the class declares
  ``dry_run_safe = True``: a kind that forgets ``ctx.dry_run`` cannot act;
- an exception fails the hook (``hook crashed: ...``), never the run;
- every :class:`HookResult` leaves through :func:`redact_result`: third-party
  executors build their results themselves, so this is the one place all of them
  pass, and ``output_tail``/``error`` never carry a secret into the report, the
  ``--json`` output or a webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import attrs

from .builtins.script import not_started_result, report_result
from .hooks import Hook, HookContext, failed_result
from .phases import HookResult

log = logging.getLogger("resticm_core.hooks")

Redact = Callable[[str], str]


def _unchanged(text: str) -> str:
    return text


def run_hook(hook: Hook, ctx: HookContext, *, redact: Redact = _unchanged) -> list[HookResult]:
    """Run one hook entry through its lifecycle; never raises an ``Exception``.

    :param redact: the run's redaction (``Redactor.redact``), applied to every result.
    """
    return [redact_result(result, redact) for result in _lifecycle(hook, ctx)]


def _lifecycle(hook: Hook, ctx: HookContext) -> Sequence[HookResult]:
    try:
        if ctx.cancel.is_set():
            # Starting a hook only to stop it at once would run its first lines.
            return [not_started_result(ctx, name=hook.describe(), kind=hook.kind)]
        if not hook.checks_itself:
            problems = hook.check(ctx)
            if problems:
                result = failed_result(
                    name=hook.describe(), kind=hook.kind, phase=ctx.phase, error="; ".join(problems)
                )
                report_result(ctx, result)
                return [result]
        if ctx.dry_run and not hook.dry_run_safe:
            return hook.dry_run(ctx)
        return hook.run(ctx)
    except Exception as exc:  # a plugin's bug fails its hook, never the whole run
        log.debug("hook %s crashed", _name(hook), exc_info=True)
        result = failed_result(
            name=_name(hook),
            kind=hook.kind,
            phase=ctx.phase,
            error=f"hook crashed: {type(exc).__name__}: {_text(exc)}",
        )
        report_result(ctx, result)
        return [result]


def redact_result(result: HookResult, redact: Redact) -> HookResult:
    """*result* with the texts it carries from outside (error, output tail) redacted.

    The name is the entry's own (a configured path, ``python:mod:func``): it stays
    as the output sink saw it, so ``hook_finished(name)`` still matches.
    """
    return attrs.evolve(
        result,
        error=redact(result.error),
        output_tail=tuple(redact(line) for line in result.output_tail),
    )


def _name(hook: Hook) -> str:
    try:
        return hook.describe()
    except Exception:  # describe() is plugin code too
        return hook.kind or type(hook).__name__


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not break the report
        return ""


__all__ = ["redact_result", "run_hook"]
