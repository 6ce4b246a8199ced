"""``resticm config show``: the effective configuration, secrets masked.

Every key with its value after the defaults are filled in (and, per backend,
what the file wrote), as YAML that reads like the file it came from. A secret
is never printed: the fields the models mark secret (``repr=False``), every
value :func:`~resticm_core.secrets.find_secrets` finds (by key name, URL
passwords, webhook tokens) and every value the config's notifiers and dumps
declare secret (:meth:`~resticm_core.config.Config.secrets`) become ``***``.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import attrs
from ruamel.yaml import YAML

from .config import Config
from .dumps import DumpSource
from .hooks import Hook
from .model_keys import is_config_key, yaml_key
from .notify.api import Notifier
from .secrets import MASK, Redactor, find_secrets


def _masked(value: object) -> object:
    """A secret field's value with every non-empty string in it masked (keys kept)."""
    if isinstance(value, Mapping):
        return {str(k): MASK if v else v for k, v in value.items()}
    return MASK if value else value


def config_tree(node: object) -> Any:
    """*node* (the config models) as plain YAML data by its YAML keys; secret fields masked."""
    if attrs.has(type(node)):
        data: dict[str, Any] = {}
        if isinstance(node, Hook):
            data["kind"] = node.kind
        if isinstance(node, Notifier | DumpSource):
            data["type"] = node.kind
        if hasattr(node, "repository") and isinstance(node.repository, str):
            data["repository"] = node.repository  # first, as a config file starts
        model: Any = type(node)
        for field in attrs.fields(model):
            if not is_config_key(field):
                continue
            value = getattr(node, field.name)
            data[yaml_key(field.name)] = config_tree(_masked(value) if not field.repr else value)
        return data
    if isinstance(node, Mapping):
        return {str(k): config_tree(v) for k, v in node.items()}
    if isinstance(node, tuple | list):
        return [config_tree(v) for v in node]
    if isinstance(node, enum.Enum):
        return node.value
    if isinstance(node, Path):
        return str(node)
    return node


def _replace(tree: Any, path: tuple[Hashable, ...], secret: str) -> None:
    parent = tree
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    value = parent[last]
    if isinstance(value, str):
        parent[last] = MASK if value == secret else value.replace(secret, MASK)
    else:  # a number under a secret key
        parent[last] = MASK


def _redact_strings(tree: Any, redactor: Redactor) -> Any:
    if isinstance(tree, str):
        return redactor.redact(tree)
    if isinstance(tree, dict):
        return {k: _redact_strings(v, redactor) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_redact_strings(v, redactor) for v in tree]
    return tree


def masked_config(config: Config) -> dict[str, Any]:
    """The effective config as plain data, every secret replaced by ``***``."""
    tree: dict[str, Any] = config_tree(config)
    for secret in list(find_secrets(tree)):
        if secret.path:
            _replace(tree, secret.path, secret.value)
    urls = [config.repository, *(b.repository for b in config.backends.values())]
    masked: dict[str, Any] = _redact_strings(tree, Redactor(config.secrets(), urls=urls))
    return masked


def show_text(config: Config) -> str:
    """``config show``'s YAML, with a header naming the file."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]  # models' order
    buffer = io.StringIO()
    yaml.dump(masked_config(config), buffer)
    source = config.source_path or "<config>"
    header = (
        f"# resticm: the effective configuration of {source}\n"
        "# (every default filled in; secrets shown as ***)\n"
    )
    return header + buffer.getvalue()


__all__ = ["config_tree", "masked_config", "show_text"]
