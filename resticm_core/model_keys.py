"""The YAML key of a model attribute, shared by the converter and the secret finder
(which walks the models without the converter, so it sits below it)."""

from __future__ import annotations

import keyword
from typing import Any

import attrs


def yaml_key(attribute: str) -> str:
    """The YAML key of an attrs attribute: ``finally_`` is written ``finally``."""
    if attribute.endswith("_") and keyword.iskeyword(attribute[:-1]):
        return attribute[:-1]
    return attribute


def is_config_key(attribute: attrs.Attribute[Any]) -> bool:
    """False for fields that are set from code only (``metadata={"yaml": False}``)."""
    return attribute.init and attribute.metadata.get("yaml", True) is not False
