"""Plugin discovery and the kind registry, in-process: a fresh manager per test, no global state."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import textwrap
import tomllib
import types
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pluggy
import pytest

import resticm_core
from resticm_core.builtins.directory import DirectoryHook
from resticm_core.builtins.python_callable import PythonHook
from resticm_core.builtins.script import ScriptHook
from resticm_core.config import Repository
from resticm_core.errors import PluginError
from resticm_core.hooks import Hook
from resticm_core.hookspecs import hookimpl
from resticm_core.plugin_manager import (
    BUILTIN_PLUGINS,
    DISTRIBUTION,
    PluginInfo,
    PluginRegistry,
    make_plugin_manager,
)

ROOT = Path(__file__).parent.parent


@attrs.frozen(kw_only=True)
class EchoHook(Hook):
    kind: ClassVar[str] = "echo"
    text: str = ""


@attrs.frozen(kw_only=True)
class OtherEchoHook(Hook):
    kind: ClassVar[str] = "echo"


@attrs.frozen(kw_only=True)
class KindlessHook(Hook):
    pass


@attrs.frozen(kw_only=True)
class NotAHook:
    kind: ClassVar[str] = "alien"


def plugin(name: str, **impls: Callable[..., Any]) -> types.ModuleType:
    """A plugin module named *name* whose ``@hookimpl`` functions are *impls*."""
    module = types.ModuleType(name)
    for hook_name, function in impls.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def registry(*plugins: object, blocked: tuple[str, ...] = ()) -> PluginRegistry:
    """The builtins plus *plugins*, independent of what else is installed."""
    return PluginRegistry(make_plugin_manager(plugins=plugins, entry_points=False, blocked=blocked))


def test_builtins_provide_script_directory_and_python() -> None:
    """The three builtin kinds load from the builtin table, with the entry points or without."""
    for reg in (registry(), PluginRegistry.default()):
        assert reg.hook_types["script"] is ScriptHook
        assert reg.hook_types["directory"] is DirectoryHook
        assert reg.hook_types["python"] is PythonHook
        kinds = {info.name: info.hook_kinds for info in reg.plugins()}
        assert kinds["script"] == ("script",) and kinds["python"] == ("python",)


def test_blocked_builtin_loses_its_kind() -> None:
    """Blocking a builtin by name removes its kind and nothing else, entry points or not."""
    for reg in (registry(blocked=("python",)), PluginRegistry.default(blocked=["python"])):
        assert "python" not in reg.hook_types
        assert reg.hook_class("python") is None
        assert {"script", "directory"} <= reg.hook_types.keys()
        assert "python" not in {info.name for info in reg.plugins()}


def test_plugin_kind_is_registered_with_its_owner() -> None:
    reg = registry(plugin("resticm_echo", resticm_hook_types=lambda: [EchoHook]))
    assert reg.hook_class("echo") is EchoHook
    info = next(i for i in reg.plugins() if i.name == "resticm_echo")
    assert info == PluginInfo(
        name="resticm_echo", module="resticm_echo", distribution=None, version=None,
        hook_kinds=("echo",), notifier_kinds=(),
    )


def test_two_plugins_claiming_one_kind_is_an_error_naming_both() -> None:
    first = plugin("resticm_echo_a", resticm_hook_types=lambda: [EchoHook])
    second = plugin("resticm_echo_b", resticm_hook_types=lambda: [OtherEchoHook])
    with pytest.raises(PluginError, match="'echo'") as excinfo:
        registry(first, second)
    message = str(excinfo.value)
    assert "resticm_echo_a" in message and "resticm_echo_b" in message
    assert "RESTICM_DISABLE_PLUGINS" in message


def test_plugin_claiming_a_builtin_kind_is_an_error() -> None:
    """A plugin cannot silently replace a builtin through pluggy's call order."""

    @attrs.frozen(kw_only=True)
    class MyScript(Hook):
        kind: ClassVar[str] = "script"

    with pytest.raises(PluginError, match="kind 'script'") as excinfo:
        registry(plugin("resticm_myscript", resticm_hook_types=lambda: [MyScript]))
    message = str(excinfo.value)  # the kind and both plugins: 'script' twice
    assert "'resticm_myscript'" in message and message.count("'script'") == 2


def test_hook_class_without_kind_is_an_error() -> None:
    with pytest.raises(PluginError, match=r"'resticm_kindless'.*without a 'kind'"):
        registry(plugin("resticm_kindless", resticm_hook_types=lambda: [KindlessHook]))


def test_hook_class_that_is_not_a_hook_is_an_error() -> None:
    with pytest.raises(PluginError, match=r"'resticm_alien'.*'alien' is not a Hook subclass"):
        registry(plugin("resticm_alien", resticm_hook_types=lambda: [NotAHook]))


def test_raising_type_hook_is_a_plugin_error() -> None:
    def broken() -> list[type[Hook]]:
        raise RuntimeError("boom")

    with pytest.raises(PluginError, match=r"'resticm_broken'.*resticm_hook_types.*boom"):
        registry(plugin("resticm_broken", resticm_hook_types=broken))


def test_misspelled_hookimpl_is_rejected() -> None:
    """``check_pending`` catches an implementation whose plugin hook does not exist."""
    with pytest.raises(PluginError, match="resticm_hook_typos"):
        registry(plugin("resticm_typo", resticm_hook_typos=lambda: [EchoHook]))


def test_hookimpl_with_unknown_argument_is_a_plugin_error() -> None:
    """pluggy's validation error is a PluginError too (the CLI prints it, exit 2)."""
    with pytest.raises(PluginError, match="extra"):
        registry(plugin("resticm_badarg", resticm_run_finished=lambda report, extra: None))


@pytest.mark.parametrize("raising_first", [True, False], ids=["raising-first", "raising-last"])
def test_raising_observer_does_not_stop_the_others(
    raising_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Observer failures are logged with the plugin's name; every other observer still runs."""
    seen: list[tuple[str, object]] = []

    def explode(**_: object) -> None:
        raise RuntimeError("observer bug")

    raising = plugin("resticm_raising", resticm_run_finished=lambda report, config: explode(),
                     resticm_phase_finished=lambda result: explode())
    recording = plugin("resticm_recording",
                       resticm_run_finished=lambda report: seen.append(("run", report)),
                       resticm_phase_finished=lambda result, config: seen.append(("phase", result)))
    plugins = (raising, recording) if raising_first else (recording, raising)
    reg = registry(*plugins)
    with caplog.at_level(logging.WARNING):
        reg.run_finished("the report", config="the config")
        reg.phase_finished("a phase", config="the config")
    assert seen == [("run", "the report"), ("phase", "a phase")]
    failures = [r.getMessage() for r in caplog.records if "resticm_raising" in r.getMessage()]
    assert len(failures) == 2 and all("observer bug" in f for f in failures)


def test_repository_password_first_non_none_wins() -> None:
    """Plugins are asked last-registered first (pluggy's order); the first answer stops the call."""
    asked: list[str] = []

    def answer(name: str, value: str | None) -> Callable[[Repository], str | None]:
        def impl(repository: Repository) -> str | None:
            asked.append(name)
            return value if value is None else f"{value}-for-{repository.name}"

        return impl

    reg = registry(
        plugin("resticm_late", resticm_repository_password=answer("late", "late")),
        plugin("resticm_vault", resticm_repository_password=answer("vault", "vault")),
        plugin("resticm_abstain", resticm_repository_password=answer("abstain", None)),
    )
    assert reg.repository_password(Repository(name="offsite", url="/srv/r")) == "vault-for-offsite"
    assert asked == ["abstain", "vault"]


def test_repository_password_none_when_no_plugin_answers() -> None:
    assert registry().repository_password(Repository(name="primary", url="/srv/r")) is None
    abstain = plugin("resticm_abstain", resticm_repository_password=lambda repository: None)
    assert registry(abstain).repository_password(Repository(name="primary", url="/r")) is None


@pytest.fixture
def fake_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], str]]:
    """Installs ``fake_pkg_<test>`` 1.0: a module and its ``*.dist-info`` on sys.path.

    Its entry point ``fake`` names the module. Called with the module's source;
    returns the module name (unique per test, removed from sys.modules after it).
    """
    module = f"fake_pkg_{tmp_path.name.replace('-', '_')}"

    def install(source: str) -> str:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[resticm]\nfake = {module}\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        return module

    yield install
    sys.modules.pop(module, None)


FAKE_PLUGIN = """
    from typing import ClassVar
    import attrs
    from resticm_core import Hook, hookimpl

    @attrs.frozen(kw_only=True)
    class FakeHook(Hook):
        kind: ClassVar[str] = "fake"

    @hookimpl
    def resticm_hook_types():
        return [FakeHook]
"""


def test_entry_point_plugin_is_discovered_with_its_distribution(
    fake_distribution: Callable[[str], str],
) -> None:
    module = fake_distribution(FAKE_PLUGIN)
    reg = PluginRegistry(make_plugin_manager())
    info = next(i for i in reg.plugins() if i.name == "fake")
    assert info == PluginInfo(
        name="fake", module=module, distribution=module, version="1.0",
        hook_kinds=("fake",), notifier_kinds=(),
    )
    hook_class = reg.hook_class("fake")
    assert hook_class is not None and hook_class.__module__ == module
    assert {"script", "directory", "python"} <= reg.hook_types.keys()


def test_entry_point_plugin_is_blocked_by_its_name(fake_distribution: Callable[[str], str]) -> None:
    module = fake_distribution(FAKE_PLUGIN)
    reg = PluginRegistry(make_plugin_manager(blocked=["fake"]))
    assert "fake" not in reg.hook_types
    assert "fake" not in {info.name for info in reg.plugins()}
    assert module not in sys.modules, "a blocked plugin must not even be imported"


def test_broken_entry_point_plugin_is_a_plugin_error(
    fake_distribution: Callable[[str], str],
) -> None:
    fake_distribution("raise ImportError('needs libfoo')\n")
    with pytest.raises(PluginError, match="needs libfoo"):
        make_plugin_manager()


@pytest.mark.parametrize("entry_points", [False, True])
def test_explicit_plugin_that_is_also_installed(entry_points: bool) -> None:
    """``plugins=[module]`` for an installed plugin (a plugin author's own test) just works."""
    import resticm_core.builtins.script as script

    reg = PluginRegistry(make_plugin_manager(plugins=[script], entry_points=entry_points))
    assert reg.hook_class("script") is ScriptHook


# -- pluggy's call machinery: order, wrappers, tracing ------------------------------------------


def typed_plugin(name: str, log: list[str], **opts: bool) -> types.ModuleType:
    """A plugin whose ``resticm_hook_types`` records *name* and returns no class."""
    module = types.ModuleType(name)

    def resticm_hook_types() -> list[type[Hook]]:
        log.append(name)
        return []

    module.resticm_hook_types = hookimpl(**opts)(resticm_hook_types)  # type: ignore[attr-defined]
    return module


def test_types_hook_is_called_in_pluggys_own_order() -> None:
    """Last registered first, ``tryfirst`` before all, ``trylast`` after: what pm.hook.X() does."""
    calls: list[str] = []
    plugins = (
        typed_plugin("resticm_first", calls, tryfirst=True),
        typed_plugin("resticm_plain", calls),
        typed_plugin("resticm_late", calls),
        typed_plugin("resticm_last", calls, trylast=True),
    )
    pm = make_plugin_manager(plugins=plugins, entry_points=False)
    PluginRegistry(pm)
    ours, calls[:] = list(calls), []
    pm.hook.resticm_hook_types()  # pluggy's own 1:N call on the same manager
    mine = [name for name in ours if name.startswith("resticm_")]
    assert mine == [name for name in calls if name.startswith("resticm_")]
    assert mine == ["resticm_first", "resticm_late", "resticm_plain", "resticm_last"]


def observer_plugin(name: str, log: list[str], **opts: bool) -> types.ModuleType:
    module = types.ModuleType(name)

    def resticm_run_finished(report: object) -> None:
        log.append(name)

    module.resticm_run_finished = hookimpl(**opts)(resticm_run_finished)  # type: ignore[attr-defined]
    return module


def test_observers_are_called_in_pluggys_own_order() -> None:
    calls: list[str] = []
    plugins = (
        observer_plugin("resticm_first", calls, tryfirst=True),
        observer_plugin("resticm_last", calls, trylast=True),
        observer_plugin("resticm_a", calls),
        observer_plugin("resticm_b", calls),
    )
    reg = registry(*plugins, blocked=("prometheus", "status_file"))  # they need a real config
    reg.run_finished("the report", config="the config")  # type: ignore[arg-type]
    ours, calls[:] = list(calls), []
    reg.pm.hook.resticm_run_finished(report="the report", config="the config")
    assert ours == calls == ["resticm_first", "resticm_b", "resticm_a", "resticm_last"]


@pytest.mark.parametrize("spec", ["resticm_run_finished", "resticm_phase_finished",
                                  "resticm_hook_types"])
@pytest.mark.parametrize("style", ["wrapper", "hookwrapper"])
def test_a_wrapper_of_a_per_plugin_hook_is_refused_naming_the_plugin(spec: str, style: str) -> None:
    """resticm calls observers and ``*_types`` once per plugin: a wrapper could not wrap them."""

    def wrapping(**_: object) -> Generator[None, object, object]:
        return (yield)

    module = types.ModuleType("resticm_wrapping")
    setattr(module, spec, hookimpl(**{style: True})(wrapping))
    with pytest.raises(PluginError, match=rf"'resticm_wrapping': {spec} may not be a wrapper"):
        registry(module)


def test_a_wrapper_of_the_password_hook_runs_around_the_others() -> None:
    """The firstresult hook is one pm.hook call: a wrapper sees (and may change) the answer."""
    seen: list[object] = []

    def resticm_repository_password(repository: Repository) -> Generator[None, str | None, str]:
        answer = yield
        seen.append(answer)
        return f"wrapped:{answer}"

    wrapper = types.ModuleType("resticm_wrapper")
    wrapper.resticm_repository_password = hookimpl(wrapper=True)(resticm_repository_password)  # type: ignore[attr-defined]
    vault = plugin("resticm_vault", resticm_repository_password=lambda repository: "secret")
    reg = registry(vault, wrapper)
    assert reg.repository_password(Repository(name="primary", url="/r")) == "wrapped:secret"
    assert seen == ["secret"]
    assert reg.has_password_plugins() and not registry().has_password_plugins()


def test_hookcall_monitoring_sees_every_plugin_call() -> None:
    """Observers and ``*_types`` go through pluggy's hook callers: tracing sees each call."""
    seen: list[tuple[str, tuple[str, ...]]] = []

    def before(name: str, impls: list[pluggy.HookImpl], kwargs: object) -> None:
        seen.append((name, tuple(i.plugin_name for i in impls)))

    def after(*_: object) -> None:
        pass

    calls: list[str] = []
    pm = make_plugin_manager(
        plugins=[observer_plugin("resticm_obs", calls), typed_plugin("resticm_types", calls)],
        entry_points=False,
    )
    pm.add_hookcall_monitoring(before, after)
    reg = PluginRegistry(pm)
    reg.run_finished("the report", config="the config")  # type: ignore[arg-type]
    assert ("resticm_run_finished", ("resticm_obs",)) in seen
    assert ("resticm_hook_types", ("resticm_types",)) in seen
    assert ("resticm_hook_types", ("script",)) in seen
    assert calls == ["resticm_types", "resticm_obs"]

    traced: list[str] = []
    pm.trace.root.setwriter(traced.append)
    undo = pm.enable_tracing()
    reg.run_finished("the report", config="the config")  # type: ignore[arg-type]
    undo()
    assert any("resticm_run_finished" in line for line in traced), traced


def test_an_unhashable_observer_object_is_refused_at_load() -> None:
    """pluggy keeps the plugins left out of a per-plugin call in a set."""
    unhashable = types.SimpleNamespace(resticm_run_finished=hookimpl(lambda report: None))
    fine = plugin("resticm_fine", resticm_run_finished=lambda report: None)
    message = r"\(a SimpleNamespace\) implements resticm_run_finished but cannot"
    with pytest.raises(PluginError, match=message):
        registry(fine, unhashable)


def test_notifier_class_that_is_not_a_notifier_is_an_error() -> None:
    with pytest.raises(PluginError, match=r"'resticm_alien'.*'alien' is not a Notifier subclass"):
        registry(plugin("resticm_alien", resticm_notifier_types=lambda: [NotAHook]))


# -- the builtins: declared once -----------------------------------------------------------------


def test_builtins_are_declared_once_in_the_code_table() -> None:
    """BUILTIN_PLUGINS is the only list: no entry point repeats it, no builtin module misses it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == DISTRIBUTION
    declared = pyproject["project"].get("entry-points", {}).get("resticm", {})
    assert not [v for v in declared.values() if v.startswith("resticm_core")], declared
    with_hookimpls = set()
    for path in (ROOT / "resticm_core" / "builtins").glob("*.py"):
        tree = ast.parse(path.read_text())
        decorators = [d for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                      for d in node.decorator_list]
        if any("hookimpl" in ast.unparse(d) for d in decorators):
            with_hookimpls.add(f"resticm_core.builtins.{path.stem}")
    assert with_hookimpls == set(BUILTIN_PLUGINS.values())
    installed = {ep.name for ep in importlib.metadata.entry_points(group="resticm")}
    assert not installed & BUILTIN_PLUGINS.keys(), "a stale install still declares builtins"


CLI_PLUGINS = """\
PLUGIN         DISTRIBUTION           VERSION    KINDS
directory      resticm-core           {v:<10} hook:directory
discord        resticm-core           {v:<10} notifier:discord
docker-stop    resticm-core           {v:<10} hook:docker-stop, hook:docker-start
google_chat    resticm-core           {v:<10} notifier:google_chat
healthchecks   resticm-core           {v:<10} notifier:healthchecks
ntfy           resticm-core           {v:<10} notifier:ntfy
prometheus     resticm-core           {v:<10} -
python         resticm-core           {v:<10} hook:python
script         resticm-core           {v:<10} hook:script
secret-env     resticm-core           {v:<10} -
secret-file    resticm-core           {v:<10} -
secret-keyring resticm-core           {v:<10} -
secret-systemd resticm-core           {v:<10} -
slack          resticm-core           {v:<10} notifier:slack
status_file    resticm-core           {v:<10} -
uptime_kuma    resticm-core           {v:<10} notifier:uptime_kuma
verify-files   resticm-core           {v:<10} hook:verify-files
webhook        resticm-core           {v:<10} notifier:webhook
"""


def resticm_plugins(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "plugins", *args],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_resticm_plugins_lists_the_builtins_as_before() -> None:
    """`resticm plugins` (text and JSON) shows each builtin with resticm-core's version."""
    version = importlib.metadata.version(DISTRIBUTION)
    assert version == resticm_core.__version__
    text = resticm_plugins()
    builtin_lines = [ln for ln in text.splitlines(keepends=True)
                     if ln.split(" ", 1)[0] in {*BUILTIN_PLUGINS, "PLUGIN"}]
    assert "".join(builtin_lines) == CLI_PLUGINS.format(v=version)
    listed = {p["name"]: p for p in json.loads(resticm_plugins("--json"))}
    assert listed["script"] == {
        "name": "script", "module": "resticm_core.builtins.script",
        "distribution": "resticm-core", "version": version,
        "hook_kinds": ["script"], "notifier_kinds": [], "dump_kinds": [],
    }
    blocked = resticm_plugins(env={**os.environ, "RESTICM_DISABLE_PLUGINS": "slack"})
    assert "slack          (blocked by RESTICM_DISABLE_PLUGINS)" in blocked
    assert "notifier:slack" not in blocked


def test_an_installed_plugin_named_like_a_builtin_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pluggy would skip one of the two without a word: resticm names the distribution."""
    module = f"shadow_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text("")
    info = tmp_path / f"{module}-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text(f"[resticm]\nscript = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(PluginError, match=rf"plugin 'script' \({module} 2.0\) has the name of"):
            make_plugin_manager()
        assert "script" in {i.name for i in registry().plugins()}  # no entry points: fine
    finally:
        sys.modules.pop(module, None)


# -- discovery without importlib.metadata --------------------------------------------------------


def test_discovery_finds_what_importlib_metadata_finds(
    fake_distribution: Callable[[str], str],
) -> None:
    from resticm_core.plugin_discovery import find_entry_points

    module = fake_distribution(FAKE_PLUGIN)
    found = find_entry_points("resticm")
    assert found is not None
    expected = {(ep.name, ep.value) for ep in importlib.metadata.entry_points(group="resticm")}
    assert {(ref.name, ref.value) for ref in found} == expected
    assert ("fake", module) in expected
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert {(r.name, r.value) for r in find_entry_points("console_scripts") or ()} == {
        (ep.name, ep.value) for ep in scripts
    }


def test_entry_point_values_are_read_as_importlib_metadata_reads_them(tmp_path: Path) -> None:
    from resticm_core.plugin_discovery import EntryPointRef, find_entry_points

    info = tmp_path / "demo-1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_text(
        "# a comment\n[console_scripts]\nfake = nope:main\n\n"
        "[resticm]\n  spaced   =  os.path : join [extra]\nplain=json\n[other]\nfake = x\n"
    )
    refs = find_entry_points("resticm", [str(tmp_path), str(tmp_path / "missing")])
    assert refs == [
        EntryPointRef("spaced", "os.path : join [extra]", str(info)),
        EntryPointRef("plain", "json", str(info)),
    ]
    import json as json_module
    import os.path

    assert refs[0].load() is os.path.join and refs[1].load() is json_module
    with pytest.raises(ValueError, match="malformed"):
        EntryPointRef("bad", "not a value!", "").load()


def test_a_zip_on_sys_path_falls_back_to_pluggys_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """importlib.metadata reads distributions inside a zip; resticm's own scan does not."""
    import zipfile

    from resticm_core.plugin_discovery import find_entry_points

    module = f"zipped_{tmp_path.name.replace('-', '_')}"
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{module}.py", textwrap.dedent(FAKE_PLUGIN))
        zf.writestr(f"{module}-3.0.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {module}\nVersion: 3.0\n")
        zf.writestr(f"{module}-3.0.dist-info/entry_points.txt", f"[resticm]\nzipped = {module}\n")
    monkeypatch.syspath_prepend(str(archive))
    try:
        assert find_entry_points("resticm") is None
        reg = PluginRegistry(make_plugin_manager())
        info = next(i for i in reg.plugins() if i.name == "zipped")
        assert (info.distribution, info.version, info.hook_kinds) == (module, "3.0", ("fake",))
    finally:
        sys.modules.pop(module, None)


def test_a_run_finds_a_plugin_installed_since_the_last_one_without_importlib_metadata(
    tmp_path: Path,
) -> None:
    """Nothing is cached between runs; and the backup path does not import importlib.metadata."""
    site = tmp_path / "site"
    site.mkdir()
    probe = textwrap.dedent("""
        import sys
        from resticm_core.plugin_manager import PluginRegistry
        registry = PluginRegistry.default()
        print(sorted(registry.hook_types), "importlib.metadata" in sys.modules)
    """)

    def run() -> str:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                env=env, cwd=tmp_path, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    before = run()
    assert "'fake'" not in before and before.endswith("False")
    (site / "fake_pkg_new.py").write_text(textwrap.dedent(FAKE_PLUGIN))
    info = site / "fake_pkg_new-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-pkg-new\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[resticm]\nfake = fake_pkg_new\n")
    after = run()
    assert "'fake'" in after and after.endswith("False")


def test_two_entry_points_naming_one_module_is_a_plugin_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"twice_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text("")
    info = tmp_path / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_text(f"[resticm]\none = {module}\ntwo = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(PluginError, match=r"'two'.*already loaded under another name"):
            make_plugin_manager()
        loaded = PluginRegistry(make_plugin_manager(blocked=["two"])).plugins()
        assert "one" in {i.name for i in loaded}
    finally:
        sys.modules.pop(module, None)
