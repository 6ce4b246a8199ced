"""Issue 13 point 1: nothing on the way to a hook or a config may be swappable by others.

Real scripts, real processes; the attacker is a real second process running as
uid 65534 (``setpriv``, no user created) that swaps a symlink in a loop while
resticm, as root, checks and runs the hook 200 times.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from resticm_core.builtins.directory import DirectoryHook
from resticm_core.builtins.script import ScriptHook
from resticm_core.config_file import load_config
from resticm_core.errors import ConfigError
from resticm_core.hooks import HookContext
from resticm_core.phases import Outcome, Phase
from resticm_core.plugin_manager import PluginRegistry
from resticm_core.testing import RecordingSink

IS_ROOT = os.geteuid() == 0
NOBODY = 65534
BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
SWAP_RUNS = 200

needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="the attacker is a second uid; only root can start one (setpriv)"
)


def make_ctx(config_dir: Path) -> HookContext:
    return HookContext(
        phase=Phase.PRE_BACKUP,
        command="backup",
        env=dict(BASE_ENV),
        config_dir=config_dir,
        output=RecordingSink(),
    )


def script(path: Path, body: str, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(mode)
    return path


def directory(path: Path, mode: int) -> Path:
    path.mkdir(parents=True)
    path.chmod(mode)  # mkdir's mode is filtered by the umask
    return path


def run_script(config_dir: Path, path: str) -> tuple[Outcome, str]:
    [result] = ScriptHook(path=path).run(make_ctx(config_dir))
    return result.outcome, result.error


# -- (a) a symlink into a directory others can write -------------------------------------------


def test_symlink_into_world_writable_directory_is_refused(tmp_path: Path) -> None:
    """The issue's case: the link's own directory is safe, the target's is not."""
    marker = tmp_path / "ran"
    shared = directory(tmp_path / "shared", 0o777)
    real = script(shared / "pre.sh", f"touch {marker}\n")
    hooks = directory(tmp_path / "hooks", 0o755)
    (hooks / "pre.sh").symlink_to(real)

    outcome, error = run_script(tmp_path, "hooks/pre.sh")

    assert outcome is Outcome.FAILED
    assert f"hook directory {shared} is writable by group or others" in error
    assert f"(fix: chmod go-w {shared})" in error
    assert not marker.exists()
    # config validate (check()) says the same without running anything.
    assert ScriptHook(path="hooks/pre.sh").check(make_ctx(tmp_path)) == [error]


def test_writable_ancestor_further_up_is_refused(tmp_path: Path) -> None:
    """Whoever can write /a can rename /a/b away and put their own /a/b/pre.sh there."""
    marker = tmp_path / "ran"
    top = directory(tmp_path / "top", 0o777)
    script(directory(top / "hooks", 0o755) / "pre.sh", f"touch {marker}\n")

    outcome, error = run_script(tmp_path, "top/hooks/pre.sh")

    assert outcome is Outcome.FAILED
    assert (
        f"directory {top} (on the way to hook {tmp_path / 'top/hooks/pre.sh'}) is writable "
        "by group or others" in error
    )
    assert f"chmod go-w {top}" in error
    assert not marker.exists()


def test_writable_directory_of_the_path_as_written_is_refused(tmp_path: Path) -> None:
    """The link itself sits in a writable directory: it could be pointed elsewhere."""
    real = script(directory(tmp_path / "safe", 0o755) / "pre.sh", "exit 0\n")
    links = directory(tmp_path / "links", 0o777)
    (links / "pre.sh").symlink_to(real)

    outcome, error = run_script(tmp_path, "links/pre.sh")

    assert outcome is Outcome.FAILED
    assert f"directory {links} (on the way to hook" in error
    assert f"chmod go-w {links}" in error


def test_sticky_ancestor_owned_by_root_or_us_is_accepted(tmp_path: Path) -> None:
    """/tmp-like: others may add names there but not replace ours."""
    shared = directory(tmp_path / "shared", 0o1777)
    script(directory(shared / "hooks", 0o755) / "pre.sh", "exit 0\n")
    assert run_script(tmp_path, "shared/hooks/pre.sh") == (Outcome.OK, "")


@needs_root
def test_sticky_ancestor_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    shared = directory(tmp_path / "shared", 0o1777)
    script(directory(shared / "hooks", 0o755) / "pre.sh", "exit 0\n")
    os.chown(shared, NOBODY, NOBODY)

    outcome, error = run_script(tmp_path, "shared/hooks/pre.sh")

    assert outcome is Outcome.FAILED
    assert f"directory {shared} (on the way to hook" in error
    assert f"is owned by uid {NOBODY}, neither root nor the current user" in error
    assert f"(fix: chown root {shared})" in error


@needs_root
def test_symlink_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    real = script(tmp_path / "real.sh", "exit 0\n")
    link = tmp_path / "pre.sh"
    link.symlink_to(real)
    os.chown(link, NOBODY, NOBODY, follow_symlinks=False)

    outcome, error = run_script(tmp_path, "pre.sh")

    assert outcome is Outcome.FAILED
    assert f"symlink {link} (on the way to hook {link}) is owned by uid {NOBODY}" in error
    assert f"(fix: chown -h root {link})" in error


def test_symlinked_hook_in_safe_directories_runs_with_its_configured_dollar_zero(
    tmp_path: Path,
) -> None:
    """Executed by its path, not /proc/self/fd/N: $0 and `dirname "$0"` keep working."""
    seen = tmp_path / "seen"
    real = script(
        directory(tmp_path / "opt", 0o755) / "pre.sh",
        f'cd "$(dirname "$0")" && echo "$0 $(pwd -P)" > {seen}\n',
    )
    hooks = directory(tmp_path / "hooks", 0o755)
    (hooks / "pre.sh").symlink_to(os.path.relpath(real, hooks))

    assert run_script(tmp_path, "hooks/pre.sh") == (Outcome.OK, "")
    assert seen.read_text() == f"{hooks / 'pre.sh'} {hooks}\n"


def test_symlink_loop_is_a_located_failure(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    outcome, error = run_script(tmp_path, "a")
    assert outcome is Outcome.FAILED
    assert error == f"cannot access hook {tmp_path / 'a'}: Too many levels of symbolic links"


def test_dotdot_in_a_symlink_target_is_walked_physically(tmp_path: Path) -> None:
    """`link -> ../x` is taken from the link's real directory, as the kernel does."""
    real = script(directory(tmp_path / "lib", 0o755) / "pre.sh", "exit 0\n")
    nested = directory(tmp_path / "etc" / "hooks", 0o755)
    (tmp_path / "etc" / "alias").symlink_to("hooks")
    (nested / "pre.sh").symlink_to(f"../../{real.parent.name}/{real.name}")
    assert run_script(tmp_path, "etc/alias/pre.sh") == (Outcome.OK, "")


# -- (c) .d directories -------------------------------------------------------------------------


def test_directory_module_symlinked_into_a_writable_directory_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    shared = directory(tmp_path / "shared", 0o777)
    real = script(shared / "mod.sh", f"touch {marker}\n")
    hook_dir = directory(tmp_path / "pre-backup.d", 0o755)
    (hook_dir / "10-link").symlink_to(real)
    hook = DirectoryHook(path="pre-backup.d")

    [result] = hook.run(make_ctx(tmp_path))

    assert result.failed and result.name == "pre-backup.d/10-link"
    assert f"hook directory {shared} is writable by group or others" in result.error
    assert f"chmod go-w {shared}" in result.error
    assert not marker.exists()
    assert hook.check(make_ctx(tmp_path)) == [result.error]


def test_directory_reached_through_a_symlink_into_a_writable_directory_is_refused(
    tmp_path: Path,
) -> None:
    """Whoever can write `shared` can swap the whole .d directory for theirs."""
    marker = tmp_path / "ran"
    shared = directory(tmp_path / "shared", 0o777)
    real_dir = directory(shared / "pre-backup.d", 0o755)
    script(real_dir / "10-mod", f"touch {marker}\n")
    (tmp_path / "pre-backup.d").symlink_to(real_dir)
    hook = DirectoryHook(path="pre-backup.d")

    [result] = hook.run(make_ctx(tmp_path))

    assert result.failed and result.name == "pre-backup.d"
    assert f"directory {shared} (on the way to hook directory" in result.error
    assert f"chmod go-w {shared}" in result.error
    assert not marker.exists()


def test_directory_reached_through_a_symlink_in_safe_directories_runs(tmp_path: Path) -> None:
    log = tmp_path / "log"
    real_dir = directory(tmp_path / "opt" / "pre-backup.d", 0o755)
    script(real_dir / "10-mod", f'basename "$0" >> {log}\n')
    (tmp_path / "pre-backup.d").symlink_to(real_dir)
    [result] = DirectoryHook(path="pre-backup.d").run(make_ctx(tmp_path))
    assert result.outcome is Outcome.OK
    assert log.read_text() == "10-mod\n"


# -- (d) configs --------------------------------------------------------------------------------


@pytest.fixture
def registry() -> PluginRegistry:
    return PluginRegistry.default()


def test_config_through_a_symlink_into_a_writable_directory_is_refused(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    shared = directory(tmp_path / "shared", 0o777)
    real = shared / "config.yaml"
    real.write_text("repository: /r\npassword_file: /pw\n")
    real.chmod(0o600)
    etc = directory(tmp_path / "etc", 0o755)
    (etc / "config.yaml").symlink_to(real)

    with pytest.raises(ConfigError) as caught:
        load_config(etc / "config.yaml", registry=registry, environ={})

    assert caught.value.messages == [
        f"directory {shared} (on the way to config {real}) is writable by group or others, "
        f"so anyone could put another file in place of config {real} "
        f"(fix: chmod go-w {shared})"
    ]


def test_config_in_a_writable_directory_is_refused_by_the_cli(tmp_path: Path) -> None:
    """The real CLI: a configuration error (exit 2), the directory named, no traceback."""
    shared = directory(tmp_path / "shared", 0o777)
    config = shared / "config.yaml"
    config.write_text("repository: /r\npassword_file: /pw\n")
    config.chmod(0o600)

    proc = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(config), "config", "validate"],
        env={**BASE_ENV, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert proc.returncode == 2, proc.stderr
    assert f"directory {shared} (on the way to config {config})" in proc.stderr
    assert f"chmod go-w {shared}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_in_safe_directories_still_loads_through_a_symlink(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    real = directory(tmp_path / "real", 0o755) / "config.yaml"
    real.write_text("repository: /r\npassword_file: /pw\n")
    real.chmod(0o600)
    (tmp_path / "config.yaml").symlink_to(real)
    config = load_config(tmp_path / "config.yaml", registry=registry, environ={})
    assert config.source_path == real


# -- (b) the swap loop: an attacker as uid 65534 against resticm as root -----------------------

ATTACKER = r"""
import os, sys
fd = int(sys.argv[1])
target = sys.argv[2]          # what the victim's link points to, inside the attacker's dir
evil = f"#!/bin/sh\nid -u > {sys.argv[3]}\n"
os.umask(0o022)
bad = os.open("bad", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755, dir_fd=fd)
os.write(bad, evil.encode())
os.close(bad)
first = True
while True:
    for name in ("good", "bad"):
        try:
            os.symlink(name, "tmp", dir_fd=fd)
        except FileExistsError:
            pass
        try:
            os.rename("tmp", target, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError:       # EPERM in a sticky directory: the rule holds, keep trying
            pass
        if first:
            print("ready", flush=True)
            first = False
"""


class Attacker:
    """uid 65534 swapping ``<dir>/<target>`` between ``good`` and ``bad`` as fast as it can.

    It gets its directory as an inherited descriptor, so nothing above ``tmp_path``
    needs to be opened up for it.
    """

    def __init__(self, attack_dir: Path, target: str, marker: Path) -> None:
        self.fd = os.open(attack_dir, os.O_RDONLY | os.O_DIRECTORY)
        self.proc = subprocess.Popen(
            [
                shutil.which("setpriv") or "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                sys.executable,
                "-I",
                "-c",
                ATTACKER,
                str(self.fd),
                target,
                str(marker),
            ],
            pass_fds=(self.fd,),
            stdout=subprocess.PIPE,
            text=True,
            env=dict(BASE_ENV),
        )

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "ready\n", "the attacker did not start"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.fd)


@pytest.fixture
def attacker_setup(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to start the attacker as another uid")
    marker = tmp_path / "pwned"
    # Only root can write the marker's directory: it appears only if root ran the bad file.
    yield tmp_path, marker


def _hooks_under_attack(tmp_path: Path, attack_dir: Path) -> tuple[ScriptHook, DirectoryHook]:
    """A script hook and a .d module, both symlinks (in safe dirs) to ``attack_dir/pre.sh``."""
    script(attack_dir / "good", "exit 0\n")  # root's benign hook, root-owned
    (attack_dir / "pre.sh").symlink_to("good")
    hooks = directory(tmp_path / "hooks", 0o755)
    (hooks / "pre.sh").symlink_to(attack_dir / "pre.sh")
    hook_dir = directory(tmp_path / "pre-backup.d", 0o755)
    (hook_dir / "10-mod").symlink_to(attack_dir / "pre.sh")
    return ScriptHook(path="hooks/pre.sh"), DirectoryHook(path="pre-backup.d")


@needs_root
@pytest.mark.parametrize(
    ("mode", "owner", "problem"),
    [
        (0o777, 0, "is writable by group or others"),  # the world-writable directory
        (0o755, NOBODY, f"is owned by uid {NOBODY}"),  # a directory of the attacker's own
    ],
    ids=["world-writable", "attacker-owned"],
)
def test_swap_loop_never_runs_the_attackers_file(
    attacker_setup: tuple[Path, Path], mode: int, owner: int, problem: str
) -> None:
    """The issue's exploit (old code: uid 0 within a few runs): root's hook is a symlink,
    in a safe directory, to a root-owned file in a directory the attacker can write.
    Every one of 200 runs refuses, and the attacker's file never runs."""
    tmp_path, marker = attacker_setup
    attack_dir = directory(tmp_path / "attacker", mode)
    script_hook, dir_hook = _hooks_under_attack(tmp_path, attack_dir)
    os.chown(attack_dir, owner, owner)
    attacker = Attacker(attack_dir, "pre.sh", marker)
    try:
        attacker.wait_ready()
        outcomes = []
        for _ in range(SWAP_RUNS):
            ctx = make_ctx(tmp_path)
            outcomes += [r.outcome for r in (*script_hook.run(ctx), *dir_hook.run(ctx))]
            assert not marker.exists(), f"the attacker's file ran as root: {marker.read_text()}"
    finally:
        attacker.stop()
    assert outcomes == [Outcome.FAILED] * (2 * SWAP_RUNS)
    problems = script_hook.check(make_ctx(tmp_path))
    assert any(f"directory {attack_dir} {problem}" in p for p in problems)
    assert not marker.exists()


@needs_root
def test_swap_loop_in_a_root_owned_sticky_directory_runs_only_roots_file(
    attacker_setup: tuple[Path, Path],
) -> None:
    """Accepted (sticky, owned by root, like /tmp) and still safe under the same attack:
    the attacker may add files there but cannot replace root's symlink."""
    tmp_path, marker = attacker_setup
    attack_dir = directory(tmp_path / "shared", 0o1777)
    script_hook, dir_hook = _hooks_under_attack(tmp_path, attack_dir)
    attacker = Attacker(attack_dir, "pre.sh", marker)
    try:
        attacker.wait_ready()
        outcomes = []
        for _ in range(SWAP_RUNS):
            ctx = make_ctx(tmp_path)
            outcomes += [r.outcome for r in (*script_hook.run(ctx), *dir_hook.run(ctx))]
            assert not marker.exists(), f"the attacker's file ran as root: {marker.read_text()}"
    finally:
        attacker.stop()
    assert outcomes == [Outcome.OK] * (2 * SWAP_RUNS)
    assert (attack_dir / "bad").stat().st_uid == NOBODY  # the attacker did run
    assert os.readlink(attack_dir / "pre.sh") == "good"
