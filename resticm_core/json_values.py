"""Result values as JSON-ready data, through one cattrs converter.

The reports (`RunReport`, `StepResult`, `HookResult`, listings...) are attrs classes;
their ``to_dict()`` is this converter, so a field added to a class appears in
``--json``, the webhook's ``report`` and the Ansible result without a hand-kept list
of keys to forget. Enums become their values, tuples lists, mappings dicts.

Two class-level switches, both optional:

- a field's ``metadata={"round": 3}`` rounds that float (durations);
- ``__json_extras__ = {"failed": None, "duration": 3}`` adds read-only properties
  (with their rounding) after the fields, for what is derived rather than stored.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import cattrs

EXTRAS = "__json_extras__"


def _rounded(digits: int | None) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return round(value, digits) if digits is not None and isinstance(value, float) else value

    return convert


@functools.cache
def converter() -> cattrs.Converter:
    """The converter (built once per process, on first use: cattrs is not needed before)."""
    import cattrs
    from cattrs.gen import make_dict_unstructure_fn, override

    conv = cattrs.Converter(unstruct_collection_overrides={Sequence: list, tuple: list})
    conv.register_unstructure_hook(enum.Enum, lambda member: member.value)

    def for_class(cl: type) -> Callable[[Any], dict[str, Any]]:
        overrides: dict[str, Any] = {
            a.name: override(unstruct_hook=_rounded(a.metadata["round"]))
            for a in attrs.fields(cl)
            if "round" in a.metadata
        }
        fields: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cl, conv, **overrides)
        extras: Mapping[str, int | None] = getattr(cl, EXTRAS, {})
        if not extras:
            return fields

        def with_extras(value: Any) -> dict[str, Any]:
            data = fields(value)
            for name, digits in extras.items():
                data[name] = _rounded(digits)(conv.unstructure(getattr(value, name)))
            return data

        return with_extras

    conv.register_unstructure_hook_factory(attrs.has, for_class)
    return conv


def to_json_value(value: Any) -> Any:
    """*value* (an attrs instance, or anything holding them) as JSON-ready data."""
    return converter().unstructure(value)


def to_json_dict(value: Any) -> dict[str, Any]:
    """An attrs instance as a JSON-ready dict (its ``to_dict()``)."""
    data = to_json_value(value)
    if not isinstance(data, dict):
        raise TypeError(f"{type(value).__name__} is not an attrs class")
    return data
