"""``resticm config schema``: a JSON Schema (draft 2020-12) of the configuration.

Generated, never written by hand: it walks the attrs models (``attrs.fields`` and
their type hints) from :class:`~resticm_core.config.Config` down, with the hook
kinds, notifier types and dump types of the loaded plugins, so a plugin's keys
are in it as soon as the plugin is installed. It follows what the loader
(:mod:`resticm_core.converter`) accepts: unknown keys are refused
(``additionalProperties: false``), ``null`` stands for an empty list or section,
a duration is seconds or ``10m``, a hook phase is one entry or a list.

It is for editors (the YAML language server) and CI linters; the loader stays
the judge (values checked across keys, files on disk).
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Mapping, MutableSequence, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

import attrs

from .config import Config
from .config_sources import INCLUDE_KEY, JOBS_KEY, RUN_JOBS_KEY
from .converter import _is_duration_field
from .dumps import DumpSource
from .hooks import Hook
from .model_keys import is_config_key, yaml_key
from .notify.api import Notifier

if TYPE_CHECKING:
    from .plugin_manager import PluginRegistry

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://resticm.invalid/config.schema.json"
_DURATION = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": r"^\s*(?:\d+(?:\.\d+)?[hms])+\s*$"},
    ],
    "description": "seconds, or a duration like 90s, 10m, 2h, 1h30m",
}
_NULL = {"type": "null"}


def _json_default(value: object) -> tuple[bool, object]:
    """(True, value) when *value* can be written as a JSON default."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, bool | int | float | str):
        return True, value
    if isinstance(value, tuple | list) and all(isinstance(v, str | int | float) for v in value):
        return True, list(value)
    return False, None


@attrs.define
class _Builder:
    """Builds ``$defs`` entries, one per attrs class, as they are met."""

    registry: PluginRegistry
    defs: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    def ref(self, cls: type) -> dict[str, Any]:
        name = self.def_name(cls)
        if name not in self.defs:
            self.defs[name] = {}  # a placeholder: recursion stops here
            self.defs[name] = self.object_schema(cls)
        return {"$ref": f"#/$defs/{name}"}

    @staticmethod
    def def_name(cls: type) -> str:
        module = cls.__module__.removeprefix("resticm_core.")
        return f"{module}.{cls.__qualname__}"

    def object_schema(self, cls: type, *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        properties: dict[str, Any] = dict(extra or {})
        required: list[str] = []
        for field in attrs.fields(cls):
            if not is_config_key(field):
                continue
            key = yaml_key(field.name)
            annotation = hints.get(field.name, Any)
            entry = self.field_schema(field, annotation)
            if field.default is attrs.NOTHING:
                required.append(key)
            elif not isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                ok, default = _json_default(field.default)
                if ok:
                    entry = {**entry, "default": default}
            properties[key] = entry
        schema: dict[str, Any] = {
            # ``retention:`` with nothing below (null) keeps the defaults, as in the Go
            # tool (the keywords below apply to objects only, so null passes them).
            "type": ["object", "null"],
            "properties": properties,
            "additionalProperties": False,
        }
        doc = (cls.__doc__ or "").strip().split("\n\n")[0]
        if doc:
            schema["description"] = " ".join(doc.split())
        if required:
            schema["required"] = required
        return schema

    def field_schema(self, field: attrs.Attribute[Any], annotation: object) -> dict[str, Any]:
        if _is_duration_field(field, annotation):
            if annotation is float:
                return dict(_DURATION)
            return {"anyOf": [*_DURATION["anyOf"], _NULL], "description": _DURATION["description"]}
        return self.type_schema(annotation)

    def type_schema(self, annotation: object) -> dict[str, Any]:
        origin, args = get_origin(annotation), get_args(annotation)
        if annotation is Any:
            return {}
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.type_schema(a) for a in args]}
        if annotation is type(None):
            return dict(_NULL)
        if annotation is bool:
            return {"type": "boolean"}
        if annotation is int:
            return {"type": "integer"}
        if annotation is float:
            return {"type": "number"}
        if annotation in (str, Path):
            return {"type": "string"}
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return {"enum": [m.value for m in annotation]}
        if annotation is Hook:
            return self.hook_entry()
        if annotation is Notifier:
            return self.typed_entry("notifier", self.registry.notifier_types, aliases=True)
        if annotation is DumpSource:
            return self.typed_entry("dump", self.registry.dump_types, aliases=False)
        if isinstance(annotation, type) and attrs.has(annotation):
            return self.ref(annotation)
        if (origin is tuple and len(args) == 2 and args[1] is Ellipsis) or origin in (
            list,
            Sequence,
            MutableSequence,
        ):
            items = self.type_schema(args[0])
            if args[0] is Hook:
                # A phase is one entry (the Go tool's ``pre_backup: /path``) or a list.
                return {"anyOf": [{"type": "array", "items": items}, items, _NULL]}
            return {"type": ["array", "null"], "items": items}
        if origin in (Mapping, dict, typing.Mapping) or (
            isinstance(origin, type) and issubclass(origin, Mapping)
        ):
            return {"type": ["object", "null"], "additionalProperties": self.type_schema(args[1])}
        return {}

    def hook_entry(self) -> dict[str, Any]:
        """A hook: ``/path``, ``python:mod:func``, or a mapping of one installed kind."""
        kinds = []
        for kind, cls in sorted(self.registry.hook_types.items()):
            name = f"hook.{kind}"
            if name not in self.defs:
                self.defs[name] = {}
                self.defs[name] = {
                    **self.object_schema(
                        cls, extra={"kind": {"const": kind, "description": f"hook kind {kind}"}}
                    ),
                    "type": "object",  # an entry, not a section: null is no hook
                }
            kinds.append({"$ref": f"#/$defs/{name}"})
        return {"anyOf": [{"type": "string", "minLength": 1}, *kinds]}

    def typed_entry(
        self, noun: str, classes: Mapping[str, type[Any]], *, aliases: bool
    ) -> dict[str, Any]:
        """A mapping chosen by its ``type`` (a notifier or a dump) among the installed ones."""
        entries = []
        for kind, cls in sorted(classes.items()):
            name = f"{noun}.{kind}"
            names = [kind, *(getattr(cls, "aliases", ()) if aliases else ())]
            if name not in self.defs:
                self.defs[name] = {}
                schema = self.object_schema(
                    cls, extra={"type": {"enum": names, "description": f"{noun} type {kind}"}}
                )
                schema["required"] = ["type", *schema.get("required", [])]
                schema["type"] = "object"
                self.defs[name] = schema
            entries.append({"$ref": f"#/$defs/{name}"})
        return {"anyOf": entries} if entries else {"not": {}}


def config_schema(registry: PluginRegistry) -> dict[str, Any]:
    """The JSON Schema of a configuration file, with *registry*'s plugin kinds."""
    builder = _Builder(registry)
    root = {**builder.object_schema(Config), "type": "object"}
    # A job inherits every key it does not set, so none is required of it; file-level
    # keys (include, jobs, run_jobs) belong to the file, not to a job.
    job = {k: v for k, v in root.items() if k != "required"}
    job["type"] = ["object", "null"]
    builder.defs["job"] = job
    strings = {"type": "array", "items": {"type": "string"}}
    root["properties"] = {
        **root["properties"],
        INCLUDE_KEY: {
            "description": "Files merged under this one, relative to it.",
            "oneOf": [{"type": "string"}, strings],
        },
        JOBS_KEY: {
            "description": "Named jobs, each inheriting every key it does not set.",
            "type": "object",
            "additionalProperties": {"$ref": "#/$defs/job"},
        },
        RUN_JOBS_KEY: {"description": "The jobs a run without -j runs, in order.", **strings},
    }
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "resticm configuration",
        **root,
        "$defs": dict(sorted(builder.defs.items())),
    }


def schema_text(registry: PluginRegistry) -> str:
    """:func:`config_schema` as indented JSON text."""
    return json.dumps(config_schema(registry), indent=2) + "\n"


__all__ = ["DRAFT", "config_schema", "schema_text"]
