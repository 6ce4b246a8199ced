"""Finding, reading and validating a configuration file, with located errors.

``load_config`` is the front door for files, ``config_from_dict`` for mappings
(the Ansible module, tests, embedding code). Both use the same converter and
the same checks, so a problem reads the same everywhere::

    config.yaml:12: hooks.pre_backup[1].timeout: expected a number of seconds
        (or like '10m'), got 'soon'
    <config>: copy_to_backends[0]: unknown backend 'offsite' (defined: b2)

Every schema problem is reported at once in one :class:`~resticm_core.errors.ConfigError`;
a YAML syntax error or duplicate key is reported alone, because the parser stops there.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import stat
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs
from cattrs.errors import CattrsError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent, NodeEvent

from .config import Config, Credentials
from .config_merge import line_of, own_line
from .converter import flatten_errors, make_converter, show
from .errors import ConfigError, ConfigValueError, KeyPath
from .plugin_manager import DISABLE_ENV, PluginRegistry, blocked_from_env
from .secrets import MIN_SECRET_LENGTH, find_secrets
from .trusted_path import Unsafe, describe_unsafe, open_trusted

if TYPE_CHECKING:
    from .jobs import JobSet

#: Where root's configuration lives, and the second choice of other users.
DEFAULT_ETC_DIR = Path("/etc/resticm")
#: Below a home directory: the user's configuration and the context file.
USER_CONFIG = Path(".config/resticm/config.yaml")
CONTEXT_FILE = Path(".config/resticm/context.yaml")
NOT_FOUND_MESSAGE = (
    "no configuration file found. Create one at ~/.config/resticm/config.yaml "
    "or /etc/resticm/config.yaml, or pass --config"
)
#: Environment variables that give restic the primary password when the config names none.
PASSWORD_VARIABLES = ("RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND")
PASSWORD_KEYS = ("password", "password_file", "password_command")
PASSWORD_REQUIRED = "required: set password, password_file or password_command (or RESTIC_PASSWORD)"
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
RETENTION_COUNTS = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
)
# A config nests about six levels; the limit turns a pathological file into a
# located error instead of a RecursionError.
_MAX_YAML_DEPTH = 100
# ``${...}`` (issue 18): variables and secret references are no inline secret.
_REFERENCES = re.compile(r"\$\{[^}]*\}")


def _yaml() -> YAML:
    """A fresh round-trip loader: a YAML instance keeps per-document state."""
    yaml = YAML()
    yaml.max_depth = _MAX_YAML_DEPTH
    return yaml


# -- search order -----------------------------------------------------------------


def _home_of_user(name: str) -> Path | None:
    try:
        return Path(pwd.getpwnam(name).pw_dir)
    except KeyError:
        return None


def find_config_path(
    explicit: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    euid: int | None = None,
    etc_dir: Path = DEFAULT_ETC_DIR,
    home: Path | None = None,
    user_home: Callable[[str], Path | None] = _home_of_user,
) -> tuple[Path, list[Path]]:
    """The configuration file to use, as the Go tool finds it.

    1. *explicit* (``--config``), which must exist;
    2. ``config_file`` of the context file ``~/.config/resticm/context.yaml``
       when that file parses and names an existing file;
    3. for root: ``/etc/resticm/config.yaml``, then the ``SUDO_USER``'s
       ``~/.config/resticm/config.yaml``; for other users:
       ``$HOME/.config/resticm/config.yaml``, then ``/etc/resticm/config.yaml``.

    :param environ: the environment (``HOME``, ``SUDO_USER``); default ``os.environ``.
    :param euid: the effective user id; default ``os.geteuid()``.
    :param etc_dir: stands for ``/etc/resticm`` (tests).
    :param home: stands for ``$HOME`` (tests).
    :param user_home: finds a user's home directory by name (``pwd`` by default).
    :returns: the chosen path and the other existing candidates of step 3
        (reported as "also found"); the list is empty for steps 1 and 2.
    :raises ConfigError: nothing was found.
    """
    env = os.environ if environ is None else environ
    if explicit is not None:
        return _explicit_path(explicit), []
    home_dir = home if home is not None else _env_home(env)
    if home_dir is not None:
        from_context = _context_config(home_dir / CONTEXT_FILE)
        if from_context is not None:
            return from_context, []
    uid = os.geteuid() if euid is None else euid
    candidates = [etc_dir / "config.yaml"]
    if uid == 0:
        sudo_home = user_home(env["SUDO_USER"]) if env.get("SUDO_USER") else None
        if sudo_home is not None:
            candidates.append(sudo_home / USER_CONFIG)
    elif home_dir is not None:
        candidates.insert(0, home_dir / USER_CONFIG)
    existing = [path for path in candidates if path.exists()]
    if not existing:
        raise ConfigError([NOT_FOUND_MESSAGE])
    return existing[0], existing[1:]


def _env_home(env: Mapping[str, str]) -> Path | None:
    value = env.get("HOME")
    return Path(value) if value else None


def _explicit_path(explicit: str | os.PathLike[str]) -> Path:
    given = os.fspath(explicit)
    path = Path(os.path.expanduser(given))
    # Path("") is ".", which exists: an empty --config is not a file.
    if not given or not path.exists():
        raise ConfigError([f"config file not found: {given}"])
    return path


def _context_config(context_file: Path) -> Path | None:
    """``config_file`` from the context file; None when missing, unparseable or stale."""
    try:
        data = _yaml().load(context_file.read_text(encoding="utf-8"))
    except Exception:  # unreadable or unparseable (ruamel raises more than YAMLError)
        return None
    value = data.get("config_file") if isinstance(data, Mapping) else None
    if not isinstance(value, str) or not value:
        return None
    path = Path(os.path.expanduser(value))
    return path if path.exists() else None


# -- permissions ------------------------------------------------------------------


def check_config_permissions(
    path: str | os.PathLike[str],
    data: object,
    *,
    st: os.stat_result | None = None,
    environ: Mapping[str, str] | None = None,
    euid: int | None = None,
) -> list[str]:
    """Why the config file at *path* must not be used; empty when it may.

    Refused: a file writable by group or others (it names programs resticm
    runs, often as root); a file readable by group or others that holds a
    secret inline (*data* is the parsed document; what a secret is:
    :func:`resticm_core.secrets.find_secrets`); a file owned by neither root,
    the current user, nor the ``SUDO_USER``.

    :param st: the file's ``stat`` if already taken (from the open descriptor).
    """
    shown = Path(path)
    if st is None:
        try:
            st = os.stat(shown)
        except OSError as exc:
            return [f"cannot read config {shown}: {exc.strerror}"]
    env = os.environ if environ is None else environ
    uid = os.geteuid() if euid is None else euid
    mode = stat.S_IMODE(st.st_mode)
    problems = []
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(
            f"{shown} is writable by group or others (mode {mode:04o}), and it names "
            f"programs resticm runs (fix: chmod 600 {shown})"
        )
    elif mode & (stat.S_IRGRP | stat.S_IROTH) and (secrets := _inline_secret_places(data)):
        problems.append(
            f"{shown} is readable by group or others (mode {mode:04o}) and holds secrets "
            f"inline: {', '.join(secrets)} (fix: chmod 600 {shown}, or move them to "
            "password_file / password_command)"
        )
    if st.st_uid not in _allowed_owners(uid, env):
        problems.append(
            f"{shown} is owned by uid {st.st_uid}, neither root nor the current user "
            f"(fix: chown {_user_name(uid)} {shown})"
        )
    return problems


def _allowed_owners(euid: int, env: Mapping[str, str]) -> set[int]:
    owners = {0, euid}
    sudo_user = env.get("SUDO_USER")
    if sudo_user:
        with contextlib.suppress(KeyError):  # a stale SUDO_USER: nobody more
            owners.add(pwd.getpwnam(sudo_user).pw_uid)
    return owners


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def inline_secrets(data: object) -> list[str]:
    """The keys of *data* (a parsed, possibly invalid, document) that hold a secret.

    Dotted key paths (``backends.offsite.repository``), each once, in document
    order; names only, never values. What a secret is:
    :func:`resticm_core.secrets.find_secrets` (the list the redactor masks too).
    """
    return list(_inline_secret_lines(data))


def _inline_secret_lines(data: object) -> dict[str, int | None]:
    """Each :func:`inline_secrets` key and its 0-based line (None without positions)."""
    places: dict[str, int | None] = {}
    for secret in find_secrets(data):
        if _is_reference(secret.value):
            continue
        dotted, line = _locate(data, secret.path)
        places.setdefault(dotted or "the document", line)
    return places


def _is_reference(value: str) -> bool:
    """A value that is only ``${...}`` references (issue 18) holds no plaintext secret."""
    return "${" in value and len(_REFERENCES.sub("", value).strip()) < MIN_SECRET_LENGTH


def _inline_secret_places(data: object) -> list[str]:
    """:func:`inline_secrets` with the line of each, for messages: ``repository (line 1)``."""
    return [
        key if line is None else f"{key} (line {line + 1})"
        for key, line in _inline_secret_lines(data).items()
    ]


# -- locating problems ------------------------------------------------------------


@attrs.frozen
class _Document:
    """The parsed data of one source, to turn key paths into ``file:line: path`` text."""

    source: str
    data: object

    def message(self, path: KeyPath, message: str) -> str:
        dotted, line = _locate(self.data, path)
        where = self.source if line is None else f"{self.source}:{line + 1}"
        return f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}"

    def error(self, problems: Iterable[tuple[KeyPath, str]]) -> ConfigError:
        located = [
            (_locate(self.data, path)[1] or 0, self.message(path, text)) for path, text in problems
        ]
        located.sort(key=lambda item: item[0])  # stable: same-line problems keep their order
        return ConfigError(message for _, message in located)


_MISSING = object()


def _locate(data: object, path: KeyPath) -> tuple[str, int | None]:
    """The dotted text of *path* and the 0-based line of its deepest existing part.

    A missing key (a required one) is shown by its name, at its parent's line.
    """
    dotted = ""
    node: object = data
    line = own_line(data)
    for part in path:
        child, child_line, is_index = _step(node, part)
        if is_index:
            dotted += f"[{part}]"
        else:
            dotted += f".{part}" if dotted else str(part)
        node = child
        if child_line is not None:
            line = child_line
    return dotted, line


def _step(node: object, part: Hashable) -> tuple[object, int | None, bool]:
    """One level down: (child or _MISSING, the child's line if known, part is an index)."""
    is_index = isinstance(part, int) and not isinstance(part, bool)
    if isinstance(node, list | tuple) and isinstance(part, int) and is_index:
        if not 0 <= part < len(node):
            return _MISSING, None, True
        return node[part], line_of(node, "item", part), True
    if isinstance(node, Mapping):
        if part not in node:
            return _MISSING, None, False
        return node[part], line_of(node, "key", part), False
    return _MISSING, None, is_index


# -- reading ----------------------------------------------------------------------


@attrs.frozen
class _Read:
    """One config file read through one descriptor, and what the walk to it found."""

    text: str
    #: ``fstat`` of the very descriptor read (no check/use race).
    st: os.stat_result
    #: The resolved path.
    real: Path
    unsafe: tuple[Unsafe, ...]


def _read(path: Path, shown: str, *, owners: frozenset[int]) -> _Read:
    """Resolve *path* from ``/`` (:func:`~resticm_core.trusted_path.open_trusted`) and read
    it through the descriptor that walk opened, so the file checked is the file read."""
    try:
        with open_trusted(path, owners=owners, read=True) as opened:
            with open(opened.fd, encoding="utf-8", closefd=False) as stream:
                text = stream.read()
            return _Read(text=text, st=opened.st, real=opened.path, unsafe=opened.unsafe)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"cannot read config {shown}: not UTF-8 text ({exc.reason} at byte {exc.start})"]
        ) from None
    except OSError as exc:
        raise ConfigError([f"cannot read config {shown}: {exc.strerror or exc}"]) from None


def _path_problems(read: _Read, uid: int) -> list[str]:
    """Directories and symlinks on the way to the config that someone else could swap:
    as bad as a writable file (issue 13; DESIGN §10's "further ancestors are not
    checked" no longer holds)."""
    subject = f"config {read.real}"
    messages = []
    for part in read.unsafe:
        label = "symlink" if part.symlink else "directory"
        messages += describe_unsafe(
            part,
            subject=subject,
            label=label,
            runs_as=_user_name(uid),
            where=f" (on the way to {subject})",
        )
    return messages


def _parse(text: str, shown: str, *, preserve_quotes: bool = False) -> object:
    """The parsed document; with *preserve_quotes*, quoted scalars come as ruamel's
    ``*QuotedScalarString`` (a quoted ``"${VAR}"`` stays a string, issue 18)."""
    yaml = _yaml()
    yaml.preserve_quotes = preserve_quotes
    try:
        return yaml.load(text)
    except RecursionError:  # ruamel.yaml < 0.19 has no max_depth
        raise ConfigError([_too_deep(text, shown)]) from None
    except MarkedYAMLError as exc:
        if "maximum depth" in (exc.problem or ""):  # ruamel's wording names its own API
            raise ConfigError([_too_deep_at(exc.problem_mark, shown)]) from None
        raise ConfigError([_yaml_problem(exc, shown)]) from None
    except YAMLError as exc:
        raise ConfigError([f"{shown}: {exc}"]) from None
    except Exception as exc:
        # ruamel's constructors raise plain ValueError/KeyError/AttributeError for
        # some malformed scalars and merges (``2024-13-45``, ``!!bool maybe``).
        raise ConfigError([f"{shown}: invalid YAML ({type(exc).__name__}: {exc})"]) from None


def _yaml_problem(exc: MarkedYAMLError, shown: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown
    problem = exc.problem or str(exc).splitlines()[0]
    context = f" ({exc.context})" if exc.context else ""
    return f"{where}: {problem}{context}"


_TOO_DEEP = f"nested more than {_MAX_YAML_DEPTH} levels deep (a configuration needs about six)"


def _too_deep_at(mark: Any, shown: str) -> str:
    where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown
    return f"{where}: {_TOO_DEEP}"


def _too_deep(text: str, shown: str) -> str:
    """Where *text* first nests deeper than the limit, found from the parser's events.

    The parser is a state machine (no recursion), so this works where composing
    the document recursed too deep. A node's depth counts as ruamel's
    ``max_depth`` does (the document's root node is at depth 1), so both ways
    name the same place.
    """
    open_collections = 0
    try:
        for event in _yaml().parse(text):
            if isinstance(event, CollectionEndEvent):
                open_collections -= 1
            elif isinstance(event, NodeEvent):
                if open_collections + 1 > _MAX_YAML_DEPTH:
                    return _too_deep_at(event.start_mark, shown)
                if isinstance(event, CollectionStartEvent):
                    open_collections += 1
    except YAMLError:  # a syntax error before the deep part: no location to give
        pass
    return _too_deep_at(None, shown)


# -- validation -------------------------------------------------------------------


class _Located(Protocol):
    """A parsed document that locates key paths: :class:`_Document`, or a merged tree
    (:class:`resticm_core.config_merge.LocatedTree`)."""

    @property
    def source(self) -> str: ...
    @property
    def data(self) -> object: ...
    def error(self, problems: Iterable[tuple[KeyPath, str]]) -> ConfigError: ...


def _structure(
    doc: _Located,
    registry: PluginRegistry,
    *,
    base_dir: Path | None,
    environ: Mapping[str, str],
) -> Config:
    data = doc.data
    if data is None:
        raise ConfigError(
            [
                f"{doc.source}: the configuration is empty; it needs at least "
                "'repository' and a password"
            ]
        )
    if not isinstance(data, Mapping):
        raise doc.error([((), f"expected a mapping of keys (repository: ...), got {show(data)}")])
    converter = make_converter(registry, base_dir=base_dir)
    try:
        config: Config = converter.structure(data, Config)
    except (CattrsError, ConfigValueError) as exc:
        raise doc.error(flatten_errors(exc)) from None
    problems = semantic_problems(config, registry=registry, environ=environ)
    if problems:
        raise doc.error(problems)
    return config


def semantic_problems(
    config: Config, *, registry: PluginRegistry, environ: Mapping[str, str]
) -> list[tuple[KeyPath, str]]:
    """Problems the types cannot express: empty or conflicting values, unknown names."""
    return [
        *_repository_problems(config, registry, environ),
        *_copy_problems(config),
        *_range_problems(config),
        *_dump_problems(config),
        *_issue18_problems(config),
    ]


def _issue18_problems(config: Config) -> list[tuple[KeyPath, str]]:
    """Per-repository policy and restic settings (issue 18), checked in their modules."""
    from .policy import policy_problems
    from .restic_options import settings_problems

    return [*policy_problems(config), *settings_problems(config)]


def _repository_problems(
    config: Config, registry: PluginRegistry, environ: Mapping[str, str]
) -> list[tuple[KeyPath, str]]:
    problems: list[tuple[KeyPath, str]] = []
    if not config.repository.strip():
        problems.append((("repository",), "must not be empty"))
    problems += _password_conflicts(config, ())
    if not _has_primary_password(config, registry, environ):
        problems.append((("password",), PASSWORD_REQUIRED))
    for name, backend in config.backends.items():
        if not backend.repository.strip():
            problems.append((("backends", name, "repository"), "must not be empty"))
        problems += _password_conflicts(backend, ("backends", name))
    return problems


def _copy_problems(config: Config) -> list[tuple[KeyPath, str]]:
    defined = ", ".join(config.backends) or "none"
    return [
        (("copy_to_backends", i), f"unknown backend {name!r} (defined: {defined})")
        for i, name in enumerate(config.copy_to_backends)
        if name not in config.backends
    ]


def _dump_problems(config: Config) -> list[tuple[KeyPath, str]]:
    """Two dump entries with one label would share tags and snapshot paths."""
    problems: list[tuple[KeyPath, str]] = []
    seen: dict[str, int] = {}
    for i, dump in enumerate(config.dumps):
        label = dump.label
        if ":" in label or "/" in label or "," in label or not label.strip():
            problems.append(
                (("dumps", i, "name"), f"{label!r}: a dump name may not hold ':', '/' or ','")
            )
        elif label in seen:
            problems.append(
                (
                    ("dumps", i, "name"),
                    f"dumps[{seen[label]}] already uses the name {label!r}; give each "
                    f"{dump.kind} entry its own 'name:' (it labels tags and snapshot paths)",
                )
            )
        else:
            seen[label] = i
    return problems


def _range_problems(config: Config) -> list[tuple[KeyPath, str]]:
    problems: list[tuple[KeyPath, str]] = []
    if config.copy_concurrency < 1:
        problems.append(
            (("copy_concurrency",), f"must be at least 1, got {config.copy_concurrency}")
        )
    if config.retries < 0:
        problems.append((("retries",), f"must be 0 (off) or more, got {config.retries}"))
    for key in RETENTION_COUNTS:
        value = getattr(config.retention, key)
        if value < 0:
            problems.append((("retention", key), f"must be 0 (off) or more, got {value}"))
    if config.logging.level.lower() not in LOG_LEVELS:
        expected = ", ".join(LOG_LEVELS)
        problems.append(
            (("logging", "level"), f"expected one of {expected}, got {show(config.logging.level)}")
        )
    return problems


def _password_conflicts(repository: Credentials, prefix: KeyPath) -> list[tuple[KeyPath, str]]:
    given = [key for key in PASSWORD_KEYS if getattr(repository, key)]
    return [
        (
            (*prefix, key),
            f"conflicts with {given[0]}: set only one of password, password_file, password_command",
        )
        for key in given[1:]
    ]


def _has_primary_password(
    config: Config, registry: PluginRegistry, environ: Mapping[str, str]
) -> bool:
    if config.primary_repository().has_password_source:
        return True
    if any(environ.get(name) for name in PASSWORD_VARIABLES):
        return True
    # A vault or keyring plugin may answer at run time; we cannot ask it here
    # without side effects, so its presence is enough.
    return registry.has_password_plugins()


# -- front doors ------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    registry: PluginRegistry | None = None,
    environ: Mapping[str, str] | None = None,
    check_permissions: bool = True,
    job: str | None = None,
) -> Config:
    """Find, read, check and validate a configuration file.

    :param path: the ``--config`` path; None searches as :func:`find_config_path`.
    :param registry: the loaded plugins; default: installed plugins minus those
        blocked by ``RESTICM_DISABLE_PLUGINS``.
    :param environ: the environment (``HOME``, ``SUDO_USER``, ``RESTIC_PASSWORD``...);
        default ``os.environ``.
    :param check_permissions: refuse a file others could change or read secrets
        from (:func:`check_config_permissions`); library callers may turn it off.
    :param job: the job to return of a file with ``jobs:`` (needed when it has
        several; :func:`load_job_set` returns them all).
    :returns: the config, its ``source_path`` the file's real path.
    :raises ConfigError: with every problem, each ``file:line: key.path: message``.
    """
    jobs = load_job_set(
        path, registry=registry, environ=environ, check_permissions=check_permissions
    )
    return jobs.one(job, "load_config")


def load_job_set(
    path: str | os.PathLike[str] | None = None,
    *,
    registry: PluginRegistry | None = None,
    environ: Mapping[str, str] | None = None,
    check_permissions: bool = True,
) -> JobSet:
    """Find and read a configuration with its includes and ``conf.d``: one config per job.

    The parameters are :func:`load_config`'s. Includes, ``conf.d``, ``${...}`` and
    ``jobs:`` (issue 18) are :mod:`resticm_core.config_sources`; a file using none of
    them loads exactly as a single file always did. Every file is read and checked
    here, by the rules of the main file.

    :raises ConfigError: every problem, each ``file:line: key.path: message`` naming
        the file it is in.
    """
    from .config_sources import build_job_set

    env = os.environ if environ is None else environ
    chosen, _also_found = find_config_path(path, environ=env)
    if registry is None:
        registry = PluginRegistry.default(blocked=blocked_from_env(env.get(DISABLE_ENV)))
    plugins = registry
    uid = os.geteuid()
    owners = frozenset(_allowed_owners(uid, env))

    def read_file(file: Path, shown: str) -> tuple[object, Path]:
        read = _read(file, shown, owners=owners)
        data = _parse(read.text, shown, preserve_quotes=True)
        if check_permissions:
            problems = check_config_permissions(read.real, data, st=read.st, environ=env)
            problems += _path_problems(read, uid)
            if problems:
                raise ConfigError(problems)
        return data, read.real

    base_dir = chosen.resolve().parent

    def structure(tree: _Located, job: str | None, secrets: tuple[str, ...]) -> Config:
        config = _structure(tree, plugins, base_dir=base_dir, environ=env)
        real = chosen.resolve()
        return _anchor_paths(
            attrs.evolve(config, source_path=real, job=job, resolved_secrets=secrets)
        )

    return build_job_set(
        chosen, read_file=read_file, structure=structure, registry=registry, environ=env
    )


def read_config_text(path: Path, *, environ: Mapping[str, str]) -> tuple[str, Path]:
    """The text and real path of the config at *path*, read as :func:`load_config` reads
    it (resolved from ``/``, through one descriptor), refused on the same path problems.

    For tools that rewrite a config (``config validate --from-go``): they must not
    trust a file :func:`load_config` would refuse to read.
    """
    uid = os.geteuid()
    read = _read(path, str(path), owners=frozenset(_allowed_owners(uid, environ)))
    problems = _path_problems(read, uid)
    if problems:
        raise ConfigError(problems)
    return read.text, read.real


def config_from_dict(
    data: Mapping[str, Any],
    *,
    registry: PluginRegistry | None = None,
    source: str = "<config>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate a configuration given as a mapping, exactly as :func:`load_config` does.

    :param source: names the mapping in messages: ``<config>: key.path: message``.
    :param base_dir: the directory relative hook paths are taken against; None
        means the current directory.
    :raises ConfigError: with every problem.
    """
    env = os.environ if environ is None else environ
    if registry is None:
        registry = PluginRegistry.default(blocked=blocked_from_env(env.get(DISABLE_ENV)))
    config = _structure(_Document(source, data), registry, base_dir=base_dir, environ=env)
    return _anchor_paths(attrs.evolve(config, base_dir=base_dir))


def _anchor(path: str | None, base: Path) -> str | None:
    if not path:
        return path
    expanded = Path(os.path.expanduser(path))
    return str(expanded if expanded.is_absolute() else base / expanded)


def _anchor_paths(config: Config) -> Config:
    """Files that sit next to the config (``password_file``, ``exclude_file``) are
    taken relative to the config's directory, not to wherever resticm was started."""
    base = config.config_dir
    backends = {
        name: attrs.evolve(backend, password_file=_anchor(backend.password_file, base))
        for name, backend in config.backends.items()
    }
    return attrs.evolve(
        config,
        password_file=_anchor(config.password_file, base),
        exclude_file=_anchor(config.exclude_file, base) or "",
        backends=backends,
    )


def config_warnings(config: Config, environ: Mapping[str, str] | None = None) -> list[str]:
    """What will make a run fail or lose something, found without running anything.

    Commands log these as warnings and go on (the step concerned fails with the same
    message); ``config validate`` and ``schedule install`` refuse the errors among
    them (:func:`resticm_core.config_check.check_config`).
    """
    from .config_check import check_config

    found = check_config(config, environ=os.environ if environ is None else environ)
    return [*found.errors, *found.warnings]
