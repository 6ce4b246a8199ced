"""``resticm config validate --from-go [--write]``: move a Go resticm config over.

The Go tool read its YAML leniently: unknown keys were ignored, ``yes``/``on``
were booleans (yaml.v3 decoding into a bool field). resticm's loader is strict,
so a config the Go tool ran every night may be refused. This module lists, each
located, what the strict loader refuses and what behaves differently, and with
``--write`` rewrites the file in place (a ``.bak`` copy beside it, comments and
quoting kept by a ruamel.yaml round trip) so that it loads:

- a YAML 1.1 boolean word (``yes``, ``no``, ``on``, ``off``, ``y``, ``n``) in a
  field that takes ``true``/``false`` becomes that boolean: what the Go tool read;
- an unknown key is removed and a comment left in its place: the Go tool ignored
  it, so removing it keeps the behaviour the config had (a close key name is
  suggested, not applied: applying it would change what the backup does).

Everything else the loader refuses is listed for the user to decide.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
from cattrs.errors import BaseValidationError as CattrsError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.util import load_yaml_guess_indent

from .atomic_files import atomic_write
from .config import Config
from .config_file import _locate, _parse, _yaml, read_config_text, semantic_problems
from .converter import flatten_errors, make_converter
from .errors import ConfigError, ConfigValueError, KeyPath
from .plugin_manager import PluginRegistry
from .secrets import find_secrets

#: yaml.v3 decodes these into a bool field; YAML 1.2 (ruamel) reads them as strings.
_YAML11_BOOLEANS = {
    "yes": True, "y": True, "on": True, "true": True,
    "no": False, "n": False, "off": False, "false": False,
}
_BOOL_COMPLAINT = re.compile(r"^expected true or false, got '(?P<word>[^']*)'")
_UNKNOWN_KEY = re.compile(r"^unknown key(?: \(did you mean '(?P<close>[^']+)'\?\))?")

#: What behaves differently from the Go tool although the config loads: (when, text).
BEHAVIOUR_CHANGES: tuple[tuple[str, str], ...] = (
    ("hooks", "a configured hook file that is missing now fails its phase (the Go tool "
     "skipped it silently): a deleted dump script no longer gives a backup without the dump"),
    ("on_success", "on_success now runs after the default workflow (`resticm` with no "
     "command) too, not only after `backup`/`full`"),
    ("always", "the process lock is /run/resticm/<config>.lock for root (a private "
     "per-user directory otherwise), not /tmp"),
    ("always", "exit codes: 2 for a usage or config error, 3 for a partial backup (some "
     "files unreadable), 75 when another run holds the lock (the Go tool exited 1)"),
    ("always", "--dry-run runs nothing: no hook, no restic call, no notification "
     "(the Go tool ran restic backup --dry-run and the hooks)"),
    ("always", "`resticm run -c CFG ...`: flags before restic's arguments are resticm's, "
     "after `run` everything is restic's"),
    ("password_file", "password_file is used (the Go tool ignored it and needed "
     "RESTIC_PASSWORD)"),
)


@attrs.frozen
class Finding:
    """One thing to know about the config, located."""

    line: int | None
    path: str
    message: str
    #: What ``--write`` does about it ("" when it is left to the user).
    fix: str = ""

    def text(self, source: str) -> str:
        where = source if self.line is None else f"{source}:{self.line}"
        head = f"{where}: {self.path}: " if self.path else f"{where}: "
        return head + self.message + (f" [--write: {self.fix}]" if self.fix else "")


@attrs.frozen
class Migration:
    """What ``--from-go`` found, and the rewritten text when something was fixable."""

    source: Path
    fixes: tuple[Finding, ...]
    remaining: tuple[Finding, ...]
    behaviour: tuple[str, ...]
    new_text: str | None

    @property
    def loads_after_write(self) -> bool:
        return not self.remaining


def _problems(data: object, registry: PluginRegistry, base_dir: Path, environ: Mapping[str, str]
              ) -> list[tuple[KeyPath, str]]:
    if not isinstance(data, Mapping):
        return [((), "expected a mapping of keys (repository: ...)")]
    converter = make_converter(registry, base_dir=base_dir)
    try:
        config: Config = converter.structure(data, Config)
    except (CattrsError, ConfigValueError) as exc:
        return flatten_errors(exc)
    return semantic_problems(config, registry=registry, environ=environ)


def _parent(data: object, path: KeyPath) -> Any:
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    return node


def _line(data: object, path: KeyPath) -> tuple[str, int | None]:
    dotted, line = _locate(data, path)
    return dotted, None if line is None else line + 1


def _fix_one(
    data: object, path: KeyPath, message: str, tail_notes: list[str]
) -> Finding | None:
    """Apply the fix for one problem in place; None when it has none."""
    dotted, line = _line(data, path)
    boolean = _BOOL_COMPLAINT.match(message)
    if boolean and boolean["word"].lower() in _YAML11_BOOLEANS and path:
        value = _YAML11_BOOLEANS[boolean["word"].lower()]
        _parent(data, path)[path[-1]] = value
        return Finding(line, dotted, message, f"written as {str(value).lower()}")
    unknown = _UNKNOWN_KEY.match(message)
    if unknown and path:
        parent = _parent(data, path)
        if not isinstance(parent, CommentedMap):
            return None
        key = path[-1]
        column = _key_column(parent, key)
        value = parent[key]
        written = str(value).lower() if isinstance(value, bool) else str(value)
        shown = f"{key}: ..." if isinstance(value, Mapping | list) else f"{key}: {written}"
        if any(True for _ in find_secrets({key: value})):  # the one list of secrets
            shown = f"{key}: ***"
        note = f"removed by resticm config validate --from-go: '{shown}' (the Go tool ignored it"
        note += f"; did you mean '{unknown['close']}'?)" if unknown["close"] else ")"
        own, following = _comments_of(parent, key)
        if own:
            note += f" {own}"
        anchor = _next_key(data, path)
        del parent[key]
        notes = [note, *following]
        if anchor is None:
            tail_notes.extend(notes)
        else:
            anchor_map, anchor_key = anchor
            anchor_map.yaml_set_comment_before_after_key(
                anchor_key, before="\n".join(notes), indent=column
            )
        return Finding(line, dotted, message, "removed, a comment left in its place")
    return None


def _comments_of(node: CommentedMap, key: object) -> tuple[str, list[str]]:
    """The end-of-line comment of *key*'s line, and whole-line comments after it.

    ruamel attaches both to the key; deleting the key would lose them.
    """
    entry = node.ca.items.get(key)
    tokens = [t for t in (entry or ()) if t is not None and hasattr(t, "value")]
    if not tokens:
        return "", []
    lines = [line.strip() for line in "".join(t.value for t in tokens).splitlines()]
    comments = [line for line in lines if line.startswith("#")]
    own = comments[0] if lines and lines[0].startswith("#") else ""
    following = [line.lstrip("#").lstrip() for line in comments[1 if own else 0 :]]
    return own, following


def _key_column(node: CommentedMap, key: object) -> int:
    try:
        position = node.lc.key(key)
    except (KeyError, AttributeError, TypeError):
        return 0
    return int(position[1]) if position else 0


def _next_key(data: object, path: KeyPath) -> tuple[CommentedMap, object] | None:
    """The key written right after *path*'s, at its level or above: where a note can go."""
    for depth in range(len(path), 0, -1):
        node = _parent(data, path[:depth])
        if not isinstance(node, CommentedMap):
            continue
        keys = list(node.keys())
        here = path[depth - 1]
        if here in keys and keys.index(here) + 1 < len(keys):
            return node, keys[keys.index(here) + 1]
    return None


def _dumper(text: str) -> YAML:
    """A round-trip dumper with the file's own indentation and quotes."""
    yaml = _yaml()
    yaml.preserve_quotes = True
    mapping = min(
        (len(m[1]) for m in re.finditer(r"^( +)[^\s#-][^:\n]*:", text, re.MULTILINE)),
        default=2,
    )
    try:
        _, sequence, offset = load_yaml_guess_indent(text)
    except Exception:  # the guess is a heuristic; any failure keeps ruamel's defaults
        sequence, offset = None, None
    yaml.indent(
        mapping=mapping,
        sequence=sequence if sequence is not None else mapping + 2,
        offset=offset if offset is not None else mapping,
    )
    return yaml


def _behaviour(data: object) -> list[str]:
    present: set[str] = {"always"}
    if isinstance(data, Mapping):
        hooks = data.get("hooks")
        if isinstance(hooks, Mapping) and any(hooks.get(p) for p in hooks):
            present.add("hooks")
            if hooks.get("on_success"):
                present.add("on_success")
        if data.get("password_file") or any(
            isinstance(b, Mapping) and b.get("password_file")
            for b in (data.get("backends") or {}).values()
        ):
            present.add("password_file")
    return [text for when, text in BEHAVIOUR_CHANGES if when in present]


def migrate(
    path: Path, *, registry: PluginRegistry, environ: Mapping[str, str]
) -> Migration:
    """What the strict loader makes of the Go config at *path*, and the fixed text."""
    shown = str(path)
    text, real = read_config_text(path, environ=environ)
    _parse(text, shown)  # a YAML error is reported as the loader reports it
    loader = _yaml()
    loader.preserve_quotes = True  # "pw" stays "pw" when the file is written back
    data = loader.load(text)
    tail_notes: list[str] = []
    base_dir = real.parent
    fixes: list[Finding] = []
    # Fixing one problem can reveal another (a key inside a removed one is gone with it):
    # go round until nothing more can be fixed.
    for _round in range(50):
        problems = _problems(data, registry, base_dir, environ)
        fixed = [f for p, m in problems if (f := _fix_one(data, p, m, tail_notes)) is not None]
        if not fixed:
            break
        fixes.extend(fixed)
    remaining = [_remaining(data, p, m) for p, m in _problems(data, registry, base_dir, environ)]
    new_text = None
    if fixes:
        out = io.StringIO()
        _dumper(text).dump(data, out)
        new_text = out.getvalue() + "".join(f"# {note}\n" for note in tail_notes)
    return Migration(
        source=path,
        fixes=tuple(fixes),
        remaining=tuple(remaining),
        behaviour=tuple(_behaviour(data)),
        new_text=new_text,
    )


def _remaining(data: object, path: KeyPath, message: str) -> Finding:
    dotted, line = _line(data, path)
    return Finding(line, dotted, message)


def write(migration: Migration) -> Path:
    """Replace the file with the fixed text; the original is kept as ``<file>.bak``.

    The new file gets the original's mode and owner and replaces it atomically,
    so a crash leaves either the old or the new config, never half of one.
    """
    if migration.new_text is None:
        raise ConfigError([f"{migration.source}: nothing to rewrite"])
    source = migration.source
    real = Path(os.path.realpath(source))
    backup = real.with_name(real.name + ".bak")
    st = real.stat()
    shutil.copy2(real, backup)
    os.chmod(backup, st.st_mode & 0o7777)
    owner = (st.st_uid, st.st_gid) if os.geteuid() == 0 else None
    atomic_write(real, migration.new_text, mode=st.st_mode & 0o7777, owner=owner)
    return backup


def report_lines(migration: Migration, *, wrote: Path | None) -> Iterable[str]:
    """The text ``--from-go`` prints."""
    source = str(migration.source)
    if migration.fixes:
        yield "What the strict loader refuses, and --write fixes:"
        yield from (f"  {f.text(source)}" for f in migration.fixes)
    if migration.remaining:
        yield "What the strict loader refuses, for you to fix:"
        yield from (f"  {f.text(source)}" for f in migration.remaining)
    if not migration.fixes and not migration.remaining:
        yield f"The strict loader accepts {source} as it is."
    yield "What behaves differently from the Go tool (docs/migrating.md):"
    yield from (f"  - {line}" for line in migration.behaviour)
    if wrote is not None:
        yield f"Rewrote {source} (the original is {wrote})."
    elif migration.fixes:
        yield "Run again with --write to apply the fixes (a .bak copy is kept)."


def as_dict(migration: Migration, *, wrote: Path | None) -> dict[str, Any]:
    def finding(f: Finding) -> dict[str, Any]:
        return {"line": f.line, "path": f.path, "message": f.message, "fix": f.fix or None}

    return {
        "ok": not migration.remaining,
        "config": str(migration.source),
        "fixes": [finding(f) for f in migration.fixes],
        "remaining": [finding(f) for f in migration.remaining],
        "behaviour_changes": list(migration.behaviour),
        "written": wrote is not None,
        "backup": str(wrote) if wrote else None,
    }

