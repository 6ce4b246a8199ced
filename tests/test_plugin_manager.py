"""Plugin discovery and the kind registry, in-process: a fresh manager per test, no global state."""

from __future__ import annotations

import logging
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from resticm_core.builtins.directory import DirectoryHook
from resticm_core.builtins.python_callable import PythonHook
from resticm_core.builtins.script import ScriptHook
from resticm_core.config import Repository
from resticm_core.errors import PluginError
from resticm_core.hooks import Hook
from resticm_core.hookspecs import hookimpl
from resticm_core.plugin_manager import PluginInfo, PluginRegistry, make_plugin_manager


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
    """The three builtin kinds load, through the entry points or the source-checkout fallback."""
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
