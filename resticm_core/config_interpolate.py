"""``${VAR}``, ``${VAR:-default}`` and ``${scheme:reference}`` in configuration strings.

Resolved once, while the file is loaded (docs/configuration.md, "Variables" and
"Secret references"):

- ``${NAME}``: the environment variable NAME; unset is an error;
- ``${NAME:-default}``: NAME when set and not empty, else *default* (may be empty);
- ``${scheme:reference}``: a secret from a provider plugin
  (:func:`~resticm_core.hookspecs.resticm_secret_reference`): ``env``, ``file``,
  ``credential``, ``keyring`` are built in. What it resolves to is a secret wherever
  it is used: it is redacted like a password;
- ``$${`` writes a literal ``${``. A ``$`` not followed by ``{`` is left alone
  (``$HOME``, ``$$`` and ``a$b`` in a password stay as written).

Hook entries (``hooks.pre_backup`` and the other phases) are the exception: their
strings are commands and paths the hook itself expands from its environment
(``hooks.environment``) when it runs, as ``verify-files`` does with
``${BACKUP_DIR}``. There only references whose scheme some provider handles are
resolved; ``${VAR}``, ``${VAR:-x}``, ``$${`` and anything else stay for the hook.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import attrs

from .errors import SecretReferenceError

#: ``${...}`` (no nesting), or the escape ``$${``.
_TOKEN = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WITH_DEFAULT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*):-(?P<default>.*)", re.DOTALL)
_REFERENCE = re.compile(r"(?P<scheme>[a-z][a-z0-9_-]*):(?P<reference>.+)", re.DOTALL)
# What a whole-value variable may turn into besides a string: ``keep_daily: ${DAYS}``
# must give the integer the key expects, as the same text written in YAML would.
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_BOOLS = {"true": True, "false": False}

#: ``resolve(scheme, reference)``: the secret, or None when no provider handles *scheme*.
Resolver = Callable[[str, str], "str | None"]


@attrs.frozen
class Interpolated:
    """One string after interpolation."""

    #: The new value: a string, or an int/float/bool for a whole-value ``${VAR}``.
    value: object
    #: The values secret references resolved to (for the redactor).
    secrets: tuple[str, ...] = ()
    #: What was wrong, each ``${...}: message`` (the caller adds file, line and key).
    problems: tuple[str, ...] = ()


def has_interpolation(text: str) -> bool:
    """Does *text* hold something :func:`interpolate` would change?"""
    return "${" in text


def interpolate(
    text: str,
    *,
    environ: Mapping[str, str],
    resolve: Resolver,
    hook_entry: bool = False,
    typed: bool = True,
) -> Interpolated:
    """*text* with every ``${...}`` replaced (see the module docstring).

    :param hook_entry: *text* belongs to a hook entry: only resolvable references change.
    :param typed: a whole-value ``${VAR}`` becomes the number or boolean its text
        spells (False for a quoted scalar: ``"${PORT}"`` stays a string).
    """
    if "${" not in text:
        return Interpolated(text)
    secrets: list[str] = []
    problems: list[str] = []
    only_variable = False

    def replace(match: re.Match[str]) -> str:
        nonlocal only_variable
        whole = match.group()
        body = match.group("body")
        if body is None:  # "$${": the escape
            return whole if hook_entry else "${"
        reference = _REFERENCE.fullmatch(body)
        if reference is not None and not _WITH_DEFAULT.fullmatch(body):
            try:
                value = resolve(reference["scheme"], reference["reference"])
            except SecretReferenceError as exc:
                problems.append(f"{whole}: {exc}")
                return whole
            except Exception as exc:  # a plugin's bug: located, and its text (which
                # might hold the secret) is not shown
                problems.append(
                    f"{whole}: the secret provider of {reference['scheme']!r} failed "
                    f"({type(exc).__name__})"
                )
                return whole
            if value is None:
                if not hook_entry:
                    problems.append(
                        f"{whole}: no secret provider handles {reference['scheme']!r} "
                        "(built in: env, file, credential, keyring)"
                    )
                return whole
            secrets.append(value)
            return value
        if hook_entry:
            return whole
        if _NAME.fullmatch(body):
            if body not in environ:
                problems.append(f"{whole}: variable {body} is not set")
                return whole
            only_variable = match.span() == (0, len(text))
            return environ[body]
        default = _WITH_DEFAULT.fullmatch(body)
        if default is not None:
            only_variable = match.span() == (0, len(text))
            return environ.get(default["name"]) or default["default"]
        problems.append(
            f"{whole}: expected ${{NAME}}, ${{NAME:-default}} or ${{scheme:reference}} "
            "(write $${ for a literal ${)"
        )
        return whole

    result = _TOKEN.sub(replace, text)
    value: object = _typed(result) if typed and only_variable and not problems else result
    return Interpolated(value, tuple(secrets), tuple(problems))


def _typed(text: str) -> object:
    """A whole-value variable as the YAML scalar it spells: ``7`` -> 7, ``true`` -> True."""
    stripped = text.strip()
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped):
        return float(stripped)
    return _BOOLS.get(stripped.lower(), text)
