"""The cattrs Converter that turns YAML data into :class:`~resticm_core.config.Config`.

There is no module-level converter: :func:`make_converter` builds one per load,
after plugins are loaded, because plugin hook classes are part of the schema.

What it adds to a plain ``cattrs.Converter``:

- strict primitives: ``"no"`` is not a bool, ``7.9`` is not an int, ``7`` is
  not a string (YAML 1.2 reads ``no`` as a string and cattrs would coerce it);
- ``forbid_extra_keys``, so a typo is an error, never silently ignored;
- lists must be lists (cattrs would turn the string ``"abc"`` into
  ``("a", "b", "c")``) and mappings must be mappings; ``null`` for either, or for
  a whole section, means "empty"/"defaults" as it did in the Go tool;
- durations (``timeout: 10m``);
- hook entries in their short (``/path``, ``python:mod:func``) and mapping forms,
  the executor class chosen by ``kind`` from the plugin registry;
- attrs fields with ``metadata={"yaml": False}`` are not config keys, and a
  field named after a Python keyword plus ``_`` (``finally_``) is written
  without the underscore.

Errors raised while structuring are cattrs exception groups;
:func:`flatten_errors` turns one into ``(path, message)`` pairs whose paths use
the YAML key names, for :mod:`resticm_core.config_file` to locate in the file.
"""

from __future__ import annotations

import datetime
import difflib
import math
import os
import re
import typing
from collections.abc import Callable, Iterator, Mapping, MutableSequence, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    is_mapping,
    list_structure_factory,
    mapping_structure_factory,
)
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from ruamel.yaml.scalarbool import ScalarBoolean

from .dumps import DumpSource
from .errors import ConfigValueError, KeyPath
from .hooks import Hook
from .model_keys import is_config_key, yaml_key
from .notify.api import Notifier, find_type

if typing.TYPE_CHECKING:
    from .plugin_manager import PluginRegistry


_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION_RE = re.compile(r"(?:\d+(?:\.\d+)?[hms])+")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_DURATION_EXPECTED = "expected a number of seconds (or like '10m')"
_PYTHON_PREFIX = "python:"


def yaml_keys(cl: type) -> list[str]:
    """The keys a mapping for attrs class *cl* may hold (``kind`` included for hooks)."""
    keys = [yaml_key(a.name) for a in attrs.fields(cl) if is_config_key(a)]
    if issubclass(cl, Hook):
        keys.append("kind")
    if issubclass(cl, Notifier):
        keys.append("type")
    return keys


def show(value: object) -> str:
    """A value as the user wrote it in YAML, for messages (never a long repr)."""
    if value is None:
        return "null"
    if isinstance(value, bool | ScalarBoolean):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(str(value)) if len(value) <= 60 else repr(str(value)[:57] + "...")
    if isinstance(value, int) and value.bit_length() > 128:
        return "a huge number"  # str() of a 4300-digit int raises
    if isinstance(value, int | float | datetime.date):
        return str(value)
    return show_type(value)


def show_type(value: object) -> str:
    """What kind of value this is, without the value: for secrets."""
    if value is None:
        return "null"
    if isinstance(value, bool | ScalarBoolean):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, bytes | bytearray):
        return "binary data"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "a list"
    return f"a {type(value).__name__}"


def _quote_hint(value: object) -> str:
    # A YAML scalar that is not a string (7, 1.5, true, 2024-01-01) was most
    # likely meant as text: say how to write it.
    if isinstance(value, bool | int | float | datetime.date):
        return f' (quote it: "{show(value)}")'
    return ""


# -- strict primitives ------------------------------------------------------------


def _structure_bool(value: object, _: type) -> bool:
    # ruamel loads an anchored ``&x true`` as ScalarBoolean, an int subclass.
    if isinstance(value, bool | ScalarBoolean):
        return bool(value)
    raise ConfigValueError(f"expected true or false, got {show(value)}")


def _structure_int(value: object, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool | ScalarBoolean):
        return int(value)
    raise ConfigValueError(f"expected a whole number, got {show(value)}")


def _structure_float(value: object, _: type) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool | ScalarBoolean):
        try:
            return float(value)
        except OverflowError:
            raise ConfigValueError(f"number too large: {value}") from None
    raise ConfigValueError(f"expected a number, got {show(value)}")


def _structure_str(value: object, _: type) -> str:
    if isinstance(value, str):
        return str(value)  # drop ruamel's ScalarString subclasses
    raise ConfigValueError(f"expected a string, got {show(value)}{_quote_hint(value)}")


def _structure_secret_str(optional: bool) -> Callable[[Any, Any], str | None]:
    # A password written as a number must not be echoed in the error message.
    def structure(value: object, _: object) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, str):
            return str(value)
        hint = " (quote it)" if isinstance(value, bool | int | float | datetime.date) else ""
        raise ConfigValueError(f"expected a string, got {show_type(value)}{hint}")

    return structure


def _structure_secret_map(value: object, _: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigValueError(f"expected a mapping, got {show_type(value)}")
    result: dict[str, str] = {}
    errors: list[ConfigValueError] = []
    for key, item in value.items():
        if not isinstance(key, str):
            message = f"invalid key: expected a string, got {show(key)}{_quote_hint(key)}"
            errors.append(ConfigValueError(message, subpath=(key,)))
        elif not isinstance(item, str):
            hint = " (quote it)" if isinstance(item, bool | int | float | datetime.date) else ""
            message = f"expected a string, got {show_type(item)}{hint}"
            errors.append(ConfigValueError(message, subpath=(key,)))
        else:
            result[str(key)] = str(item)
    if errors:
        raise ExceptionGroup("invalid secret mapping", errors)
    return result


def _secret_hook(annotation: object) -> Callable[[Any, Any], Any] | None:
    """A structure hook that never echoes values, for ``repr=False`` (secret) fields."""
    if annotation in (str, str | None):
        return _structure_secret_str(optional=annotation is not str)
    if is_mapping(annotation) and get_args(annotation) == (str, str):
        return _structure_secret_map
    return None


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like ``90s``, ``10m``, ``2h``, ``1h30m``.

    :raises ConfigValueError: anything else, or a duration that is not > 0.
    """
    if isinstance(value, str) and _DURATION_RE.fullmatch(value.strip()):
        seconds = sum(
            float(number) * _DURATION_UNITS[unit]
            for number, unit in _DURATION_PART_RE.findall(value)
        )
    elif isinstance(value, int | float) and not isinstance(value, bool | ScalarBoolean):
        seconds = _structure_float(value, float)
    else:
        raise ConfigValueError(f"{_DURATION_EXPECTED}, got {show(value)}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ConfigValueError(f"{_DURATION_EXPECTED}, got {show(value)}")
    if seconds <= 0:
        raise ConfigValueError(f"must be greater than 0, got {show(value)}")
    return seconds


def _duration_hook(optional: bool) -> Callable[[Any, Any], float | None]:
    def structure(value: object, _: object) -> float | None:
        if value is None and optional:
            return None
        return parse_duration(value)

    return structure


def _is_duration_field(a: attrs.Attribute[Any], annotation: object) -> bool:
    # Every ``timeout`` of the schema (hooks.timeout, each hook's timeout, plugin
    # hooks inherit Hook.timeout) is a duration, and so is any field marked
    # ``metadata={"duration": True}`` (the ``timeouts:`` section); nothing else is.
    named = a.name == "timeout" or bool(a.metadata.get("duration"))
    return named and annotation in (float, float | None)


# -- containers -------------------------------------------------------------------


def _is_list_type(t: object) -> bool:
    origin = get_origin(t)
    if origin is tuple:
        args = get_args(t)
        return len(args) == 2 and args[1] is Ellipsis
    return origin in (list, Sequence, MutableSequence)


def _list_factory(t: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    mutable = get_origin(t) in (list, MutableSequence)
    inner = (
        list_structure_factory(t, conv) if mutable else homogenous_tuple_structure_factory(t, conv)
    )

    def structure(value: object, _: object) -> Any:
        if value is None:  # ``exclude_patterns:`` with every entry commented out
            return [] if mutable else ()
        # A string is iterable: without this check "abc" would become ("a", "b", "c").
        if not isinstance(value, list | tuple):
            raise ConfigValueError(f"expected a list, got {show(value)}")
        return inner(value, t)

    return structure


def _mapping_factory(t: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner = mapping_structure_factory(t, conv)

    def structure(value: object, _: object) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigValueError(f"expected a mapping, got {show(value)}")
        return inner(value, t)

    return structure


# -- attrs classes ----------------------------------------------------------------


def _field_hook(a: attrs.Attribute[Any], annotation: object) -> Callable[[Any, Any], Any] | None:
    if _is_duration_field(a, annotation):
        return _duration_hook(optional=annotation is not float)
    if not a.repr:  # the models mark secrets repr=False
        return _secret_hook(annotation)
    return None


def _attrs_structure_factory(cl: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    hints = typing.get_type_hints(cl)
    overrides: dict[str, Any] = {}
    for a in attrs.fields(cl):
        if not is_config_key(a):
            overrides[a.name] = override(omit=True)
            continue
        hook = _field_hook(a, hints.get(a.name))
        if hook is not None or yaml_key(a.name) != a.name:
            overrides[a.name] = override(rename=yaml_key(a.name), struct_hook=hook)
    generated = make_dict_structure_fn(cl, conv, **overrides)

    def structure(value: object, _: object) -> Any:
        if value is None:  # ``retention:`` with nothing below keeps the defaults (Go)
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigValueError(f"expected a mapping, got {show(value)}")
        try:
            return generated(value, cl)
        except ConfigValueError:
            raise
        except (TypeError, ValueError) as exc:
            # An attrs validator of a (plugin) class: locate it at the mapping.
            raise ConfigValueError(str(exc)) from exc

    return structure


def _attrs_unstructure_factory(cl: Any, conv: cattrs.Converter) -> Callable[[Any], Any]:
    overrides: dict[str, Any] = {}
    for a in attrs.fields(cl):
        if not is_config_key(a):
            overrides[a.name] = override(omit=True)
        elif yaml_key(a.name) != a.name:
            overrides[a.name] = override(rename=yaml_key(a.name))
    return make_dict_unstructure_fn(cl, conv, **overrides)


# -- hook entries -----------------------------------------------------------------


@attrs.frozen
class _HookEntries:
    """Structures one hook entry (string or mapping) into the registered class."""

    conv: cattrs.Converter
    hook_types: Mapping[str, type[Hook]]
    base_dir: Path | None

    def installed(self) -> str:
        return ", ".join(sorted(self.hook_types)) or "none"

    def hook_class(self, kind: str, *, subpath: KeyPath = ()) -> type[Hook]:
        cls = self.hook_types.get(kind)
        if cls is None:
            raise ConfigValueError(
                f"unknown hook kind {kind!r} (installed: {self.installed()})", subpath=subpath
            )
        return cls

    def is_directory(self, path: str) -> bool:
        if path.endswith("/"):
            return True
        candidate = Path(os.path.expanduser(path))
        if not candidate.is_absolute() and self.base_dir is not None:
            candidate = self.base_dir / candidate
        try:
            return candidate.is_dir()
        except (OSError, ValueError):  # name too long, NUL byte: not a directory
            return False

    def path_kind(self, path: object) -> str:
        # A missing file is a script: it fails when it should run, not at load.
        return "directory" if isinstance(path, str) and self.is_directory(path) else "script"

    def from_string(self, text: str) -> Hook:
        if text.startswith(_PYTHON_PREFIX):
            target = text[len(_PYTHON_PREFIX) :].strip()
            if not target:
                raise ConfigValueError("expected 'python:module:function', got 'python:'")
            return self.conv.structure({"callable": target}, self.hook_class("python"))
        if not text.strip():
            raise ConfigValueError("expected a hook path or 'python:module:function', got ''")
        return self.conv.structure({"path": text}, self.hook_class(self.path_kind(text)))

    def from_mapping(self, entry: Mapping[Any, Any]) -> Hook:
        if "kind" in entry:
            kind = entry["kind"]
            if not isinstance(kind, str):
                raise ConfigValueError(
                    f"expected a hook kind ({self.installed()}), got {show(kind)}",
                    subpath=("kind",),
                )
            cls = self.hook_class(kind, subpath=("kind",))
        elif "callable" in entry:
            cls = self.hook_class("python")
        elif "path" in entry:
            cls = self.hook_class(self.path_kind(entry["path"]))
        else:
            raise ConfigValueError(
                f"a hook mapping needs 'kind' (installed: {self.installed()}), "
                "or 'path' or 'callable'"
            )
        # A copy without ``kind``: the user's document stays intact for locating errors.
        fields = {key: value for key, value in entry.items() if key != "kind"}
        return self.conv.structure(fields, cls)

    def structure_entry(self, value: object, _: object) -> Hook:
        if isinstance(value, str):
            return self.from_string(value)
        if isinstance(value, Mapping):
            return self.from_mapping(value)
        raise ConfigValueError(
            f"expected a hook: a path, 'python:module:function' or a mapping, got {show(value)}"
        )

    def phase_factory(self, t: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
        as_list = _list_factory(t, conv)

        def structure(value: object, _: object) -> Any:
            # The Go tool's ``pre_backup: ""`` means "no hook" (its default value).
            if isinstance(value, str) and not value.strip():
                return ()
            # The Go tool's ``pre_backup: /path`` stays valid: one entry, no index.
            if isinstance(value, str | Mapping):
                return (self.structure_entry(value, Hook),)
            return as_list(value, t)

        return structure

    def unstructure(self, hook: Hook) -> dict[str, Any]:
        # With the declared type (Hook) cattrs would drop every subclass field.
        data: dict[str, Any] = self.conv.unstructure(hook, type(hook))
        return {"kind": hook.kind, **data}


@attrs.frozen
class _TypedEntries:
    """Structures one mapping chosen by its ``type`` key into the class of that type:
    ``notifications.providers[]`` (notifier plugins), ``dumps[]`` (dump plugins)."""

    conv: cattrs.Converter
    types: Mapping[str, type[Any]]
    #: What an entry is called in messages: ``provider``, ``dump``.
    noun: str
    #: How an unknown ``type`` is called: ``notification provider type``, ``dump type``.
    unknown: str
    #: Shown as "installed" when no plugin provides any type.
    none_installed: str = "none"

    def structure_entry(self, value: object, _: object) -> Any:
        installed = ", ".join(sorted(self.types)) or self.none_installed
        if not isinstance(value, Mapping):
            raise ConfigValueError(f"expected a {self.noun} mapping, got {show(value)}")
        kind = value.get("type")
        if not isinstance(kind, str):
            message = f"a {self.noun} needs 'type' (installed: {installed})"
            if kind is not None:
                message = f"expected a {self.noun} type ({installed}), got {show(kind)}"
            raise ConfigValueError(message, subpath=("type",) if "type" in value else ())
        cls = find_type(self.types, kind)
        if cls is None:
            raise ConfigValueError(
                f"unknown {self.unknown} {kind!r} (installed: {installed})", subpath=("type",)
            )
        fields = {key: item for key, item in value.items() if key != "type"}
        return self.conv.structure(fields, cls)

    def unstructure(self, entry: Any) -> dict[str, Any]:
        # With the declared base type cattrs would drop every subclass field.
        data: dict[str, Any] = self.conv.unstructure(entry, type(entry))
        return {"type": entry.kind, **data}


def _is_hook_phase(t: object) -> bool:
    return _is_list_type(t) and get_args(t)[0] is Hook


def make_converter(registry: PluginRegistry, *, base_dir: Path | None = None) -> cattrs.Converter:
    """A private converter for the config schema with the kinds *registry* knows.

    :param registry: the loaded plugins; their hook classes are structured by ``kind``.
    :param base_dir: the config file's directory, against which a relative hook
        path is checked to tell a ``directory`` from a ``script``; None means the
        current directory.
    :returns: a new ``cattrs.Converter``; ``conv.structure(data, Config)`` raises
        cattrs validation errors (see :func:`flatten_errors`).
    """
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(str, _structure_str)
    # Later registrations win: the general factories first, the Hook ones last.
    conv.register_structure_hook_factory(_is_list_type, _list_factory)
    conv.register_structure_hook_factory(is_mapping, _mapping_factory)
    conv.register_structure_hook_factory(attrs.has, _attrs_structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, _attrs_unstructure_factory)
    entries = _HookEntries(conv, dict(registry.hook_types), base_dir)
    conv.register_structure_hook_factory(_is_hook_phase, entries.phase_factory)
    # A predicate, not register_structure_hook(Hook, ...): class dispatch also
    # matches every subclass, and the hook would recurse into itself.
    conv.register_structure_hook_func(lambda t: t is Hook, entries.structure_entry)
    conv.register_unstructure_hook_func(lambda t: t is Hook, entries.unstructure)
    # Notification providers: the same predicate mechanism, dispatched on ``type``.
    notifiers = _TypedEntries(
        conv, dict(registry.notifier_types), "provider", "notification provider type"
    )
    conv.register_structure_hook_func(lambda t: t is Notifier, notifiers.structure_entry)
    conv.register_unstructure_hook_func(lambda t: t is Notifier, notifiers.unstructure)
    # Database dumps: the same, from the resticm_dump_types plugins.
    dumps = _TypedEntries(
        conv, dict(registry.dump_types), "dump", "dump type", "none: pip install resticm-dumps"
    )
    conv.register_structure_hook_func(lambda t: t is DumpSource, dumps.structure_entry)
    conv.register_unstructure_hook_func(lambda t: t is DumpSource, dumps.unstructure)
    return conv


# -- errors -----------------------------------------------------------------------


def flatten_errors(exc: BaseException) -> list[tuple[KeyPath, str]]:
    """Every problem in a structuring exception, as ``(path, message)`` pairs.

    Paths hold YAML key names and list indexes, e.g. ``("hooks", "pre_backup", 1,
    "timeout")``; an unknown key yields its own path, and its message may carry a
    "did you mean" hint.
    """
    return list(_walk(exc, ()))


def _walk(exc: BaseException, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(exc, ClassValidationError):
        with_notes, others = exc.group_exceptions()
        for sub, attr_note in with_notes:
            yield from _walk(sub, (*path, yaml_key(attr_note.name)))
        for sub in others:
            yield from _walk(sub, path)
    elif isinstance(exc, IterableValidationError):
        item_notes, rest = exc.group_exceptions()
        for sub, item_note in item_notes:
            yield from _walk_item(sub, item_note, path)
        for sub in rest:
            yield from _walk(sub, path)
    elif isinstance(exc, ForbiddenExtraKeysError):
        allowed = yaml_keys(exc.cl) if attrs.has(exc.cl) else []
        for key in sorted(exc.extra_fields, key=str):
            yield (*path, key), "unknown key" + _did_you_mean(key, allowed)
    elif isinstance(exc, ConfigValueError):
        yield (*path, *exc.subpath), exc.message
    elif isinstance(exc, KeyError):
        # cattrs reports a missing required attribute as KeyError(name).
        yield path, "required key missing"
    elif isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            yield from _walk(member, path)
    else:
        yield path, str(exc) or type(exc).__name__


def _walk_item(
    exc: BaseException, note: IterableValidationNote, path: KeyPath
) -> Iterator[tuple[KeyPath, str]]:
    # cattrs notes mapping keys and values alike; only its text tells them apart.
    if note.startswith("Structuring mapping key"):
        for sub_path, message in _walk(exc, (*path, note.index)):
            yield sub_path, f"invalid key: {message}"
    else:
        yield from _walk(exc, (*path, note.index))


def _did_you_mean(key: object, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
