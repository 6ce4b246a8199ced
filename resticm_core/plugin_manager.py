"""Plugin discovery and the registry of hook and notifier kinds.

No global manager: :func:`make_plugin_manager` builds one per run (or per test),
and :class:`PluginRegistry` is the typed facade the rest of the code uses, so
nothing outside this module touches ``pm.hook``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import types
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError
from .hooks import Hook

ENTRY_POINT_GROUP = "resticm"
#: Environment variable listing plugin names to block, comma separated.
DISABLE_ENV = "RESTICM_DISABLE_PLUGINS"

#: The builtin plugins, by entry-point name. They load through the entry points
#: like any plugin; this table only serves a source checkout that is not installed.
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
}

log = logging.getLogger(__name__)


def make_plugin_manager(
    *,
    plugins: Iterable[object] = (),
    entry_points: bool = True,
    blocked: Iterable[str] = (),
) -> pluggy.PluginManager:
    """Build a plugin manager with the hookspecs, the given plugins and the installed ones.

    :param plugins: modules or objects with ``@hookimpl`` functions, registered first
        (embedding applications, tests).
    :param entry_points: load the ``resticm`` entry-point group. The builtins are
        registered either way (from their entry points, or directly when the
        package is not installed), unless blocked.
    :param blocked: plugin names (entry-point names) that must not load.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        if name:
            pm.set_blocked(name)
    try:
        if entry_points:
            try:
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            except pluggy.PluginValidationError:
                raise
            except Exception as exc:  # a broken third-party package gets a clear message
                raise PluginError(_broken_plugin_message(pm, exc)) from exc
        # Explicit plugins after the entry points: one that is also installed (or a
        # builtin) is the same module object and must not be registered twice.
        for plugin in plugins:
            if not pm.is_registered(plugin):
                pm.register(plugin)
        for name, module_name in BUILTIN_PLUGINS.items():
            module = importlib.import_module(module_name)
            if (
                pm.get_plugin(name) is None
                and not pm.is_blocked(name)
                and not pm.is_registered(module)
            ):
                pm.register(module, name=name)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"invalid resticm plugin: {exc}") from exc
    return pm


def _broken_plugin_message(pm: pluggy.PluginManager, exc: Exception) -> str:
    """Name the entry point that failed: pluggy's error does not say which one."""
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.get_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            try:
                ep.load()
            except Exception as error:
                return (
                    f"cannot load resticm plugin {ep.name!r} ({ep.value}) from "
                    f"{dist.metadata['name']} {dist.version}: {type(error).__name__}: {error}; "
                    f"fix or uninstall it, or block it with {DISABLE_ENV}={ep.name}"
                )
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


def _collect_kinds(
    pm: pluggy.PluginManager, spec: str
) -> tuple[dict[str, type[Any]], dict[str, str]]:
    classes: dict[str, type[Any]] = {}
    owners: dict[str, str] = {}
    caller = getattr(pm.hook, spec)
    for impl in caller.get_hookimpls():
        plugin_name = impl.plugin_name
        try:
            provided = list(impl.function() or ())
        except Exception as exc:
            raise PluginError(f"plugin {plugin_name!r} failed in {spec}(): {exc}") from exc
        for cls in provided:
            kind = getattr(cls, "kind", "")
            if not isinstance(kind, str) or not kind:
                raise PluginError(f"plugin {plugin_name!r} returned {cls!r} without a 'kind'")
            if kind in owners and classes[kind] is not cls:
                raise PluginError(
                    f"two plugins provide the kind {kind!r}: {owners[kind]!r} and "
                    f"{plugin_name!r}; block one with {DISABLE_ENV}={plugin_name}"
                )
            classes[kind] = cls
            owners[kind] = plugin_name
    return classes, owners


class PluginRegistry:
    """The kinds the loaded plugins provide, and isolated calls to observer hooks."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.hook_types, self._hook_owner = _collect_kinds(pm, "resticm_hook_types")
        self.notifier_types, self._notifier_owner = _collect_kinds(pm, "resticm_notifier_types")
        self.dump_types, self._dump_owner = _collect_kinds(pm, "resticm_dump_types")
        for kind, cls in self.hook_types.items():
            if not (isinstance(cls, type) and issubclass(cls, Hook)):
                raise PluginError(
                    f"plugin {self._hook_owner[kind]!r}: hook kind {kind!r} is not a Hook subclass"
                )
        if self.dump_types:
            from .dumps import DumpSource  # lazy: only when a dump plugin is installed

            for kind, cls in self.dump_types.items():
                if not (isinstance(cls, type) and issubclass(cls, DumpSource)):
                    raise PluginError(
                        f"plugin {self._dump_owner[kind]!r}: dump type {kind!r} "
                        "is not a DumpSource subclass"
                    )

    @classmethod
    def default(cls, **kwargs: Any) -> PluginRegistry:
        """A registry over :func:`make_plugin_manager` with the same arguments."""
        return cls(make_plugin_manager(**kwargs))

    def hook_class(self, kind: str) -> type[Hook] | None:
        cls = self.hook_types.get(kind)
        return cls

    def plugins(self) -> list[PluginInfo]:
        dists = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist = dists.get(id(plugin))
            module = plugin.__name__ if isinstance(plugin, types.ModuleType) else repr(plugin)
            infos.append(
                PluginInfo(
                    name=name,
                    module=module,
                    distribution=dist.metadata["name"] if dist is not None else None,
                    version=dist.version if dist is not None else None,
                    hook_kinds=tuple(k for k, o in self._hook_owner.items() if o == name),
                    notifier_kinds=tuple(k for k, o in self._notifier_owner.items() if o == name),
                    dump_kinds=tuple(k for k, o in self._dump_owner.items() if o == name),
                )
            )
        return sorted(infos, key=lambda i: i.name)

    def repository_password(self, repository: Any) -> str | None:
        result: str | None = self.pm.hook.resticm_repository_password(repository=repository)
        return result

    def _notify_observers(self, spec: str, **kwargs: Any) -> None:
        # A loop, not a 1:N hook call: pluggy stops at the first raising implementation.
        for impl in getattr(self.pm.hook, spec).get_hookimpls():
            accepted = {k: v for k, v in kwargs.items() if k in impl.argnames}
            try:
                impl.function(**accepted)
            except Exception as exc:
                log.warning("plugin %r failed in %s: %s", impl.plugin_name, spec, exc)

    def phase_finished(self, result: Any, config: Any) -> None:
        self._notify_observers("resticm_phase_finished", result=result, config=config)

    def run_finished(self, report: Any, config: Any) -> None:
        self._notify_observers("resticm_run_finished", report=report, config=config)
