"""Plugin discovery and the registry of hook, notifier and dump kinds.

No global manager: :func:`make_plugin_manager` builds one per run (or per test),
and :class:`PluginRegistry` is the typed facade the rest of the code uses, so
nothing outside this module calls a plugin hook.

Every plugin hook is called through pluggy's own hook callers, so the call order
(last registered first, ``tryfirst``/``trylast``), argument checking, tracing
(``pm.enable_tracing()``) and ``pm.add_hookcall_monitoring`` are pluggy's. The
firstresult hook is one ordinary ``pm.hook.X(...)`` call. The ``*_types`` hooks and
the observers are called once per plugin, in pluggy's order, through
``pm.subset_hook_caller``: each class must be attributed to the plugin that
returned it, and one observer's exception must not stop the next one (a plain
1:N call stops at the first raise). Wrappers (``wrapper=True``,
``hookwrapper=True``) of those hooks cannot wrap per-plugin calls faithfully,
and a wrapper of a ``*_types`` hook could replace a kind silently: they are
refused when the registry is built.
"""

from __future__ import annotations

import importlib
import logging
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError
from .hooks import Hook
from .plugin_discovery import find_entry_points

if TYPE_CHECKING:
    from .config import Config, Repository
    from .dumps import DumpSource
    from .notify.api import Notifier
    from .phases import PhaseResult, RunReport, StepResult

ENTRY_POINT_GROUP = "resticm"
#: Environment variable listing plugin names to block, comma separated.
DISABLE_ENV = "RESTICM_DISABLE_PLUGINS"
#: The distribution the builtins belong to (``resticm plugins`` shows it).
DISTRIBUTION = "resticm-core"

#: The builtin plugins: name -> module. This is their only declaration: they are
#: registered from this table, not through entry points (so a source checkout and
#: an installed package load the same set), and are still listed by ``resticm
#: plugins`` and blocked by ``RESTICM_DISABLE_PLUGINS`` by these names.
BUILTIN_PLUGINS: Mapping[str, str] = {
    "script": "resticm_core.builtins.script",
    "directory": "resticm_core.builtins.directory",
    "python": "resticm_core.builtins.python_callable",
    "slack": "resticm_core.builtins.notify_slack",
    "discord": "resticm_core.builtins.notify_discord",
    "ntfy": "resticm_core.builtins.notify_ntfy",
    "google_chat": "resticm_core.builtins.notify_google_chat",
    "uptime_kuma": "resticm_core.builtins.notify_uptime_kuma",
    "webhook": "resticm_core.builtins.notify_webhook",
    "healthchecks": "resticm_core.builtins.notify_healthchecks",
    "prometheus": "resticm_core.builtins.prometheus_textfile",
    "status_file": "resticm_core.builtins.status_file",
    "verify-files": "resticm_core.builtins.verify_files",
    "docker-stop": "resticm_core.builtins.docker_stop",
    # issue 18: ${scheme:...} secret references in the config
    "secret-env": "resticm_core.builtins.secret_env",
    "secret-file": "resticm_core.builtins.secret_file",
    "secret-systemd": "resticm_core.builtins.secret_credential",
    "secret-keyring": "resticm_core.builtins.secret_keyring",
}

#: The plugin hooks called once per plugin (see the module docstring).
KIND_HOOKS = ("resticm_hook_types", "resticm_notifier_types", "resticm_dump_types")
OBSERVER_HOOKS = ("resticm_phase_finished", "resticm_run_finished")

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class ResticmPluginManager(pluggy.PluginManager):
    """pluggy's manager, plus where each entry-point plugin found by resticm came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        #: plugin name -> the ``*.dist-info`` directory declaring it (resticm's own scan;
        #: pluggy's scan, the fallback, records its finds in ``list_plugin_distinfo()``).
        self.metadata_dirs: dict[str, str] = {}

    def distribution_of(self, name: str) -> tuple[str, str] | None:
        """Name and version of the distribution that installed plugin *name*, if any."""
        plugin = self.get_plugin(name)
        for registered, dist in self.list_plugin_distinfo():
            if registered is plugin:
                return dist.metadata["name"], dist.version
        metadata_dir = self.metadata_dirs.get(name)
        if metadata_dir is None:
            return None
        import importlib.metadata  # only to describe a plugin: never on the backup path
        from pathlib import Path

        found = importlib.metadata.PathDistribution(Path(metadata_dir))
        return found.metadata["name"], found.version


def make_plugin_manager(
    *,
    plugins: Iterable[object] = (),
    entry_points: bool = True,
    blocked: Iterable[str] = (),
) -> ResticmPluginManager:
    """Build a plugin manager with the hookspecs, the installed, the builtin and the given plugins.

    Registration order (pluggy calls the last registered first): the ``resticm``
    entry points, then the builtins, then *plugins*.

    :param plugins: modules or objects with ``@hookimpl`` functions (embedding
        applications, tests). One already registered (a builtin, an installed
        plugin) is not registered twice.
    :param entry_points: load the ``resticm`` entry-point group. The builtins are
        registered either way, unless blocked.
    :param blocked: plugin names (builtin or entry-point names) that must not load.
    """
    pm = ResticmPluginManager()
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        if name:
            pm.set_blocked(name)
    try:
        if entry_points:
            _load_entry_points(pm)
        # After the entry points: an installed plugin under a builtin's name is then
        # seen (an entry point whose name is taken would be skipped without a word).
        for name, module_name in BUILTIN_PLUGINS.items():
            if not pm.is_blocked(name):
                _register_builtin(pm, name, importlib.import_module(module_name))
        for plugin in plugins:
            if not pm.is_registered(plugin):
                pm.register(plugin)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"invalid resticm plugin: {exc}") from exc
    return pm


def _load_entry_points(pm: ResticmPluginManager) -> None:
    """Register the ``resticm`` entry points, first on sys.path first, as pluggy does."""
    refs = find_entry_points(ENTRY_POINT_GROUP)
    if refs is None:  # a layout only importlib.metadata reads: pluggy's own scan
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except pluggy.PluginValidationError:
            raise
        except Exception as exc:  # a broken third-party package gets a clear message
            raise PluginError(_broken_plugin_message(pm, exc)) from exc
        return
    for ref in refs:
        if pm.is_blocked(ref.name) or pm.get_plugin(ref.name) is not None:
            continue  # blocked: not even imported; a name taken earlier on sys.path wins
        try:
            plugin = ref.load()
        except Exception as exc:
            raise PluginError(_load_error(ref.name, ref.value, ref.metadata_dir, exc)) from exc
        if pm.is_registered(plugin):  # two entry points naming one module
            raise PluginError(
                f"resticm plugin {ref.name!r} ({ref.value}) from {ref.metadata_dir} is already "
                f"loaded under another name; block one with {DISABLE_ENV}={ref.name}"
            )
        pm.register(plugin, name=ref.name)
        pm.metadata_dirs[ref.name] = ref.metadata_dir


def _load_error(name: str, value: str, source: str, error: Exception) -> str:
    return (
        f"cannot load resticm plugin {name!r} ({value}) from {source}: "
        f"{type(error).__name__}: {error}; "
        f"fix or uninstall it, or block it with {DISABLE_ENV}={name}"
    )


def _register_builtin(pm: ResticmPluginManager, name: str, module: types.ModuleType) -> None:
    holder = pm.get_plugin(name)
    if holder is module:  # an old install of resticm-core still declaring its builtins
        return
    if holder is not None:
        dist = pm.distribution_of(name)
        source = " ".join(dist) if dist is not None else repr(holder)
        raise PluginError(
            f"the installed resticm plugin {name!r} ({source}) has the name of a builtin "
            "plugin; rename its entry point or uninstall it"
        )
    pm.register(module, name=name)


def _broken_plugin_message(pm: pluggy.PluginManager, exc: Exception) -> str:
    """Name the entry point that failed: pluggy's error does not say which one."""
    import importlib.metadata  # pluggy's fallback scan only

    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.get_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            try:
                ep.load()
            except Exception as error:
                source = f"{dist.metadata['name']} {dist.version}"
                return _load_error(ep.name, ep.value, source, error)
    return f"cannot load a resticm plugin: {type(exc).__name__}: {exc}"


def blocked_from_env(value: str | None) -> list[str]:
    """Plugin names from the ``RESTICM_DISABLE_PLUGINS`` value."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@attrs.frozen(kw_only=True)
class PluginInfo:
    """One registered plugin, as ``resticm plugins`` lists it."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    hook_kinds: tuple[str, ...]
    notifier_kinds: tuple[str, ...]
    dump_kinds: tuple[str, ...] = ()


@attrs.frozen
class _Provided:
    """One class a ``*_types`` hook returned, and the plugin that returned it."""

    kind: str
    cls: type[object]
    owner: str


def _per_plugin_callers(pm: pluggy.PluginManager, spec: str) -> list[tuple[str, pluggy.HookCaller]]:
    """One hook caller per plugin implementing *spec*, in pluggy's call order.

    ``get_hookimpls()`` is pluggy's list, already sorted for ``tryfirst`` and
    ``trylast``; pluggy calls it from the end. A plugin with two implementations
    of *spec* (``specname``) gets one caller that runs both, in pluggy's order.
    """
    impls = getattr(pm.hook, spec).get_hookimpls()
    for impl in impls:
        try:
            hash(impl.plugin)  # pluggy keeps the plugins left out of a call in a set
        except TypeError as exc:
            raise PluginError(
                f"plugin {impl.plugin_name!r} (a {type(impl.plugin).__name__}) implements "
                f"{spec} but cannot be called on its own: {exc}; register a module or an "
                "instance of a hashable class"
            ) from exc
        if impl.wrapper or impl.hookwrapper:
            raise PluginError(
                f"plugin {impl.plugin_name!r}: {spec} may not be a wrapper "
                "(wrapper=True or hookwrapper=True): resticm calls each plugin's "
                f"{spec} on its own; remove the wrapper option, or block the plugin "
                f"with {DISABLE_ENV}={impl.plugin_name}"
            )
    ordered: list[pluggy.HookImpl] = []
    for impl in reversed(impls):
        if not any(impl.plugin is seen.plugin for seen in ordered):
            ordered.append(impl)
    callers = []
    for impl in ordered:
        others = [other.plugin for other in impls if other.plugin is not impl.plugin]
        callers.append((impl.plugin_name, pm.subset_hook_caller(spec, remove_plugins=others)))
    return callers


def _collect_kinds(pm: pluggy.PluginManager, spec: str) -> list[_Provided]:
    provided: list[_Provided] = []
    owners: dict[str, _Provided] = {}
    for plugin_name, caller in _per_plugin_callers(pm, spec):
        try:
            results: list[Iterable[type[object]]] = caller()
            classes = [cls for result in results for cls in result]
        except Exception as exc:
            raise PluginError(f"plugin {plugin_name!r} failed in {spec}(): {exc}") from exc
        for cls in classes:
            kind = getattr(cls, "kind", "")
            if not isinstance(kind, str) or not kind:
                raise PluginError(f"plugin {plugin_name!r} returned {cls!r} without a 'kind'")
            known = owners.get(kind)
            if known is not None and known.cls is cls:
                continue  # two plugins returning the same class: one kind
            if known is not None:
                raise PluginError(
                    f"two plugins provide the kind {kind!r}: {known.owner!r} and "
                    f"{plugin_name!r}; block one with {DISABLE_ENV}={plugin_name}"
                )
            owners[kind] = _Provided(kind, cls, plugin_name)
            provided.append(owners[kind])
    return provided


def _typed(provided: list[_Provided], base: type[_T], what: str) -> dict[str, type[_T]]:
    """The classes by kind, each checked to be a *base* subclass."""
    classes: dict[str, type[_T]] = {}
    for item in provided:
        cls = item.cls
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(
                f"plugin {item.owner!r}: {what} {item.kind!r} is not a {base.__name__} subclass"
            )
        classes[item.kind] = cls
    return classes


class PluginRegistry:
    """The kinds the loaded plugins provide, and the calls to the other plugin hooks."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        from .dumps import DumpSource  # the converter imports both anyway
        from .notify.api import Notifier

        self.pm = pm
        hooks = _collect_kinds(pm, "resticm_hook_types")
        notifiers = _collect_kinds(pm, "resticm_notifier_types")
        dumps = _collect_kinds(pm, "resticm_dump_types")
        self.hook_types: dict[str, type[Hook]] = _typed(hooks, Hook, "hook kind")
        self.notifier_types: dict[str, type[Notifier]] = _typed(
            notifiers, Notifier, "notifier type"
        )
        self.dump_types: dict[str, type[DumpSource]] = _typed(dumps, DumpSource, "dump type")
        self._owners = {
            "hook": {p.kind: p.owner for p in hooks},
            "notifier": {p.kind: p.owner for p in notifiers},
            "dump": {p.kind: p.owner for p in dumps},
        }
        for spec in OBSERVER_HOOKS:  # refuse wrappers and unhashable observers now, not mid-run
            _per_plugin_callers(pm, spec)

    @classmethod
    def default(
        cls,
        *,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        blocked: Iterable[str] = (),
    ) -> PluginRegistry:
        """A registry over :func:`make_plugin_manager` with the same arguments."""
        return cls(make_plugin_manager(plugins=plugins, entry_points=entry_points, blocked=blocked))

    def hook_class(self, kind: str) -> type[Hook] | None:
        return self.hook_types.get(kind)

    def plugins(self) -> list[PluginInfo]:
        """Every registered plugin, by name, with its distribution and kinds."""
        builtin = _builtin_distribution()
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist = _distribution_of(self.pm, name)
            distribution: str | None
            version: str | None
            if dist is not None:
                distribution, version = dist
            elif BUILTIN_PLUGINS.get(name) == getattr(plugin, "__name__", None):
                distribution, version = builtin
            else:
                distribution = version = None
            module = plugin.__name__ if isinstance(plugin, types.ModuleType) else repr(plugin)

            def owned(what: str, plugin_name: str = name) -> tuple[str, ...]:
                return tuple(k for k, o in self._owners[what].items() if o == plugin_name)

            infos.append(
                PluginInfo(
                    name=name,
                    module=module,
                    distribution=distribution,
                    version=version,
                    hook_kinds=owned("hook"),
                    notifier_kinds=owned("notifier"),
                    dump_kinds=owned("dump"),
                )
            )
        return sorted(infos, key=lambda i: i.name)

    def repository_password(self, repository: Repository) -> str | None:
        """The first non-None answer of the plugins, in pluggy's order (a firstresult hook)."""
        result: str | None = self.pm.hook.resticm_repository_password(repository=repository)
        return result

    def secret_reference(
        self, scheme: str, reference: str, environ: Mapping[str, str]
    ) -> str | None:
        """The secret ``${scheme:reference}`` stands for; None when no plugin handles *scheme*.

        :raises SecretReferenceError: a provider found the reference wrong.
        """
        result: str | None = self.pm.hook.resticm_secret_reference(
            scheme=scheme, reference=reference, environ=environ
        )
        return result

    def has_password_plugins(self) -> bool:
        """Whether some plugin implements ``resticm_repository_password``."""
        return bool(self.pm.hook.resticm_repository_password.get_hookimpls())

    def _notify_observers(self, spec: str, **kwargs: object) -> None:
        # One pluggy call per plugin: a 1:N call stops at the first raising plugin.
        for plugin_name, caller in _per_plugin_callers(self.pm, spec):
            try:
                caller(**kwargs)
            except Exception as exc:
                log.warning("plugin %r failed in %s: %s", plugin_name, spec, exc)

    def phase_finished(self, result: PhaseResult | StepResult, config: Config) -> None:
        self._notify_observers("resticm_phase_finished", result=result, config=config)

    def run_finished(self, report: RunReport, config: Config) -> None:
        self._notify_observers("resticm_run_finished", report=report, config=config)


def _distribution_of(pm: pluggy.PluginManager, name: str) -> tuple[str, str] | None:
    if isinstance(pm, ResticmPluginManager):
        return pm.distribution_of(name)
    plugin = pm.get_plugin(name)
    for registered, dist in pm.list_plugin_distinfo():
        if registered is plugin:
            return dist.metadata["name"], dist.version
    return None


def _builtin_distribution() -> tuple[str | None, str | None]:
    """resticm-core's name and version when it is installed; (None, None) in a bare checkout."""
    import importlib.metadata  # only for `resticm plugins`: never on the backup path

    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None, None
    return dist.metadata["name"], dist.version
