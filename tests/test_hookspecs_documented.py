"""Every plugin hook in ``hookspecs.py`` has a section in ``docs/plugin-hooks.md`` (datasette)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resticm_core import hookspecs

DOCS = Path(__file__).parent.parent / "docs" / "plugin-hooks.md"
HEADING = re.compile(r"^#{2,4} `?(resticm_\w+)`?\s*$", re.MULTILINE)


def _hookspecs() -> dict[str, Callable[..., Any]]:
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("resticm_") and hasattr(function, f"{hookspecs.PROJECT_NAME}_spec")
    }


SPECS = _hookspecs()


def signature_line(function: Callable[..., Any]) -> str:
    """``def name(arg: Type, ...) -> Return`` as written in hookspecs.py (string annotations)."""
    signature = inspect.signature(function)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"def {function.__name__}({params}) -> {signature.return_annotation}"


def section(text: str, name: str) -> str:
    """The text under the heading of *name*, up to the next heading of a plugin hook."""
    headings = list(HEADING.finditer(text))
    for i, match in enumerate(headings):
        if match.group(1) == name:
            end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
            return text[match.end():end]
    raise AssertionError(f"docs/plugin-hooks.md has no heading for {name}")


@pytest.fixture(scope="module")
def docs() -> str:
    return DOCS.read_text(encoding="utf-8")


def test_hookspecs_are_found() -> None:
    assert {"resticm_hook_types", "resticm_repository_password", "resticm_run_finished"} <= set(
        SPECS
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_has_a_section_with_its_signature(name: str, docs: str) -> None:
    function = SPECS[name]
    text = section(docs, name)
    assert signature_line(function) in text, f"{name}: signature missing or out of date"
    for param in inspect.signature(function).parameters:
        assert f"**{param}**" in text, f"{name}: parameter {param!r} not described"
    if getattr(function, f"{hookspecs.PROJECT_NAME}_spec")["firstresult"]:
        assert "Stops at first non-None result." in text


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_docstring_describes_every_parameter(name: str) -> None:
    """House style §5.1: a summary line and ``:param:`` for every argument."""
    doc = inspect.getdoc(SPECS[name]) or ""
    assert doc.splitlines() and doc.splitlines()[0].endswith(".")
    for param in inspect.signature(SPECS[name]).parameters:
        assert f":param {param}:" in doc


def test_docs_describe_no_plugin_hook_that_does_not_exist(docs: str) -> None:
    documented = {match.group(1) for match in HEADING.finditer(docs)}
    assert documented == set(SPECS)
