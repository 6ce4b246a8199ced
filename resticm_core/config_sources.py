"""Reading a configuration that spans files and holds several jobs (issue 18).

:func:`load_job_set` reads the main file, its ``include:`` files (relative to the
including file, recursively; a cycle or a missing file is a located error) and
``conf.d/*.yaml`` next to the main file (in name order), checks each file as the
main config is checked (owner, mode, inline secrets, the path to it), resolves
``${...}`` in strings (:mod:`resticm_core.config_interpolate`), merges them
(:mod:`resticm_core.config_merge`), and structures one
:class:`~resticm_core.config.Config` per job (``jobs:``), or one for the file when
it has none. The order of precedence, lowest first: included files (in list
order), the including file, then each ``conf.d`` file; a job's own keys on top.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs

from .config import Config
from .config_interpolate import interpolate
from .config_merge import LocatedTree, Node, Origin, from_yaml, merge, merge_all, to_plain
from .converter import show
from .errors import ConfigError
from .jobs import JobSet
from .phases import Phase
from .plugin_manager import PluginRegistry

#: ``read_file(path, shown)``: one file read, parsed (quotes kept) and checked like the
#: main config (owner, mode, inline secrets, the path to it): its data and real path.
#: :mod:`resticm_core.config_file` provides it (it owns the reading rules).
ReadFile = Callable[[Path, str], tuple[object, Path]]
#: ``structure(tree, job, secrets)``: one job's merged tree validated into a Config.
Structure = Callable[[LocatedTree, "str | None", tuple[str, ...]], Config]

#: File-level keys: not part of any job's config.
INCLUDE_KEY = "include"
JOBS_KEY = "jobs"
RUN_JOBS_KEY = "run_jobs"
FILE_KEYS = (INCLUDE_KEY, JOBS_KEY, RUN_JOBS_KEY)
CONF_D = "conf.d"
#: Job names end up in unit names, lock files and tags: keep them plain.
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PHASE_KEYS = frozenset(phase.value for phase in Phase)
#: More would be a mistake, not a layout.
_MAX_INCLUDE_DEPTH = 16


@attrs.define
class _Loader:
    registry: PluginRegistry
    environ: Mapping[str, str]
    read_file: ReadFile
    problems: list[str] = attrs.field(factory=list)
    secrets: list[str] = attrs.field(factory=list)

    # -- files ---------------------------------------------------------------------

    def file(self, path: Path, shown: str, stack: tuple[Path, ...]) -> tuple[Node | None, Path]:
        """The merged tree of one file and what it includes (None: an empty file)."""
        data, real = self.read_file(path, shown)
        if data is None:
            return None, real
        node = from_yaml(data, shown, transform=self.transform)
        if not node.is_mapping:
            return node, real  # reported by the caller: "expected a mapping"
        included = self.includes(node, real, (*stack, real))
        return merge_all([*included, node.without(INCLUDE_KEY)]), real

    def includes(self, node: Node, real: Path, stack: tuple[Path, ...]) -> list[Node]:
        entry = node.get(INCLUDE_KEY)
        if entry is None:
            return []
        items = entry.value if isinstance(entry.value, list) else [entry]
        found: list[Node] = []
        for item in items:
            if not isinstance(item.value, str) or not item.value.strip():
                self.problem(item.origin, f"expected a file name, got {show(item.value)}")
                continue
            target = Path(os.path.expanduser(item.value))
            if not target.is_absolute():
                target = real.parent / target
            if len(stack) >= _MAX_INCLUDE_DEPTH:
                self.problem(item.origin, f"{item.value}: includes nest deeper than "
                             f"{_MAX_INCLUDE_DEPTH} files")
                continue
            resolved = target.resolve()
            if resolved in stack:
                chain = " -> ".join(str(p) for p in (*stack[stack.index(resolved):], resolved))
                self.problem(item.origin, f"{item.value}: include cycle: {chain}")
                continue
            if not target.exists():
                self.problem(item.origin, f"{item.value}: file not found ({target})")
                continue
            included, _ = self.file(target, str(target), stack)
            if included is None:
                continue
            if not included.is_mapping:
                self.problem(included.origin, f"expected a mapping of keys, got "
                             f"{show(included.value)}")
                continue
            found.append(included)
        return found

    def conf_d(self, main_real: Path) -> list[Node]:
        directory = main_real.parent / CONF_D
        if not directory.is_dir():
            return []
        nodes = []
        # Name order, as run-parts and systemd drop-ins: 10-web.yaml before 20-db.yaml.
        for path in sorted(p for p in directory.glob("*.yaml") if not p.name.startswith(".")):
            node, _ = self.file(path, str(path), (main_real,))
            if node is None:
                continue
            if not node.is_mapping:
                self.problem(node.origin, f"expected a mapping of keys, got {show(node.value)}")
                continue
            nodes.append(node)
        return nodes

    # -- strings -------------------------------------------------------------------

    def transform(self, text: str, origin: Origin, quoted: bool) -> object:
        done = interpolate(
            text,
            environ=self.environ,
            resolve=lambda scheme, ref: self.registry.secret_reference(scheme, ref, self.environ),
            hook_entry=_in_hook_entry(origin.path),
            typed=not quoted,
        )
        self.secrets += done.secrets
        for problem in done.problems:
            self.problem(origin, problem)
        return done.value

    def problem(self, origin: Origin, text: str) -> None:
        tree = LocatedTree(origin.source, None, {(): origin})
        message = tree.message((), text)
        if message not in self.problems:
            self.problems.append(message)


def _in_hook_entry(path: tuple[object, ...]) -> bool:
    """Is *path* inside a hook phase list (``hooks.pre_backup[0]...``, also in a job)?"""
    pairs = itertools.pairwise(path)
    return any(part == "hooks" and after in _PHASE_KEYS for part, after in pairs)


def build_job_set(
    chosen: Path,
    *,
    read_file: ReadFile,
    structure: Structure,
    registry: PluginRegistry,
    environ: Mapping[str, str],
) -> JobSet:
    """The jobs of the config at *chosen*, with its includes and ``conf.d``.

    Called by :func:`resticm_core.config_file.load_job_set`, which finds the file and
    supplies how a file is read and a tree structured (so this module needs nothing
    of it, and the rules for reading a config stay in one place).

    :raises ConfigError: every problem, each ``file:line: key.path: message`` naming
        the file it is in.
    """
    loader = _Loader(registry, environ, read_file)
    shown = str(chosen)
    main, real = loader.file(chosen, shown, ())
    if main is None or not main.is_mapping:
        if loader.problems:
            raise ConfigError(loader.problems)
        # The single-file messages ("the configuration is empty", "expected a mapping").
        data, origins = (None, {}) if main is None else to_plain(main)
        structure(LocatedTree(shown, data, origins), None, ())
        raise AssertionError("unreachable: structuring refuses a non-mapping")
    tree = merge_all([main, *loader.conf_d(real)])
    assert tree is not None
    if loader.problems:
        raise ConfigError(loader.problems)
    return _job_set(tree, loader, structure, shown=shown, real=real)


def _job_set(
    tree: Node, loader: _Loader, structure: Structure, *, shown: str, real: Path
) -> JobSet:
    base = tree.without(*FILE_KEYS)
    jobs_node = tree.get(JOBS_KEY)
    secrets = tuple(dict.fromkeys(loader.secrets))
    if jobs_node is None:
        if (stray := tree.get(RUN_JOBS_KEY)) is not None:
            loader.problem(stray.origin, "run_jobs needs jobs: (this file defines no jobs)")
            raise ConfigError(loader.problems)
        config = _build(base, structure, shown=shown, job=None, secrets=secrets)
        return JobSet(source_path=real, single=config)
    if not isinstance(jobs_node.value, dict) or not jobs_node.value:
        loader.problem(
            jobs_node.origin,
            "expected a mapping of job names to their keys (jobs: {web: {directories: ...}})",
        )
        raise ConfigError(loader.problems)
    jobs: dict[str, Config] = {}
    errors: list[str] = []
    for name, job in jobs_node.value.items():
        if not isinstance(name, str) or not _JOB_NAME.match(name):
            loader.problem(job.origin, f"job name {name!r}: use letters, digits, '-', '_', '.'")
            continue
        if job.value is None:
            job = attrs.evolve(job, value={})
        if not job.is_mapping:
            loader.problem(job.origin, f"expected a mapping of keys, got {show(job.value)}")
            continue
        try:
            jobs[name] = _build(merge(base, job), structure, shown=shown, job=name, secrets=secrets)
        except ConfigError as exc:
            errors += [m for m in exc.messages if m not in errors]
    run_jobs = _run_jobs(tree.get(RUN_JOBS_KEY), list(jobs_node.value), loader)
    if loader.problems or errors:
        raise ConfigError([*loader.problems, *errors])
    return JobSet(source_path=real, jobs=jobs, run_jobs=run_jobs)


def _run_jobs(node: Node | None, names: list[object], loader: _Loader) -> tuple[str, ...]:
    if node is None:
        return ()
    if not isinstance(node.value, list):
        loader.problem(node.origin, f"expected a list of job names, got {show(node.value)}")
        return ()
    chosen: list[str] = []
    for item in node.value:
        if item.value not in names:
            known = ", ".join(str(n) for n in names)
            loader.problem(item.origin, f"unknown job {show(item.value)} (jobs: {known})")
        elif isinstance(item.value, str):
            chosen.append(item.value)
    return tuple(chosen)


def _build(
    node: Node, structure: Structure, *, shown: str, job: str | None, secrets: tuple[str, ...]
) -> Config:
    data, origins = to_plain(node)
    return structure(LocatedTree(shown, data, origins), job, secrets)
