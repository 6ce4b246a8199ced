"""run_module() without Ansible (FakeRestic for the engine, the real restic for the
password path), the module file's docs kept equal to the library's, and ansible-doc."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from resticm_core import ansible_module
from resticm_core.ansible_module import argument_spec, run_module
from resticm_core.locking import ProcessLock, lock_key
from resticm_core.testing import FakeRestic, RecordingSink

from .conftest import PASSWORD, requires_restic, write_script

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / "ansible_collection"
ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"
MODULE_FILE = COLLECTIONS / "ansible_collections/resticm/core/plugins/modules/resticm.py"

FORGET_JSON = json.dumps(
    [{"host": "h", "keep": [{"short_id": "bbbbbbbb"}], "remove": [{"short_id": "aaaaaaaa"}]}]
)
FORGET_NOTHING = json.dumps([{"host": "h", "keep": [{"short_id": "bbbbbbbb"}], "remove": None}])
BAD_CONTENT = {"repository": "/r", "password": "x" * 8, "retention": {"keep_daily": "soon"}}


def content(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "repository": str(tmp_path / "repo"),
        "password": PASSWORD,
        "directories": [str(tmp_path)],
        "retention": {"keep_last": 1},
        "logging": {"file": "", "console": False},
        **extra,
    }


def params(**values: Any) -> dict[str, Any]:
    """What AnsibleModule passes: every option, None when unset."""
    base: dict[str, Any] = {
        "config": None,
        "config_content": None,
        "command": "backup",
        "no_hooks": False,
        "tags": [],
        "password": None,
    }
    return {**base, **values}


def call(tmp_path: Path, fake: FakeRestic, check_mode: bool = False, **values: Any) -> Any:
    return run_module(
        params(**values),
        check_mode,
        runner=fake,
        lock_dir=tmp_path / "locks",
        output=RecordingSink(),
        environ={"PATH": os.environ.get("PATH", "")},
    )


def test_backup_reports_the_snapshot(tmp_path: Path) -> None:
    fake = FakeRestic()
    fake.respond("backup", stdout=[FakeRestic.summary_line("1a2b3c4d")])
    result = call(tmp_path, fake, config_content=content(tmp_path), tags=["ansible"])
    assert result["changed"] is True and "failed" not in result
    assert result["snapshot_id"] == "1a2b3c4d"
    assert result["report"]["snapshot_id"] == "1a2b3c4d"
    backup = next(c for c in fake.calls if c.command == "backup")
    assert "ansible" in backup.args
    # secrets inline in config_content: a warning says where they end up
    assert "config_content holds secrets inline" in result["warnings"][0]


def test_failing_pre_backup_fails_with_the_hook_error(tmp_path: Path) -> None:
    hook = write_script(tmp_path / "pre.sh", "echo 'dump failed: disk full' >&2\nexit 1\n")
    fake = FakeRestic()
    result = call(tmp_path, fake, config_content=content(tmp_path, hooks={"pre_backup": str(hook)}))
    assert result["failed"] is True and result["changed"] is False
    assert "pre.sh" in result["msg"] and "dump failed: disk full" in result["msg"]
    assert "Traceback" not in json.dumps(result)
    assert "backup" not in fake.commands()
    assert result["exit_code"] == 1


def test_no_hooks_skips_a_failing_hook(tmp_path: Path) -> None:
    hook = write_script(tmp_path / "pre.sh", "exit 1\n")
    result = call(
        tmp_path,
        FakeRestic(),
        config_content=content(tmp_path, hooks={"pre_backup": str(hook)}),
        no_hooks=True,
    )
    assert "failed" not in result


def test_check_mode_backup_runs_nothing(tmp_path: Path) -> None:
    hook = write_script(tmp_path / "pre.sh", f"touch {tmp_path / 'ran'}\n")
    fake = FakeRestic()
    result = call(
        tmp_path, fake, True, config_content=content(tmp_path, hooks={"pre_backup": str(hook)})
    )
    assert result["changed"] is True  # a snapshot would be written
    assert result["snapshot_id"] is None and result["report"]["dry_run"] is True
    assert "backup" not in fake.commands()
    assert not (tmp_path / "ran").exists()


def test_partial_backup_succeeds_with_a_warning(tmp_path: Path) -> None:
    fake = FakeRestic()
    fake.respond("backup", exit_code=3, stdout=[FakeRestic.summary_line("1a2b3c4d")])
    result = call(tmp_path, fake, config_content=content(tmp_path, password=None), password="pw")
    assert "failed" not in result and result["changed"] is True
    assert result["exit_code"] == 3 and result["warnings"]


def test_forget_changed_only_when_snapshots_were_removed(tmp_path: Path) -> None:
    fake = FakeRestic()
    fake.respond("forget", stdout=[FORGET_JSON])
    fake.respond("forget", stdout=[FORGET_NOTHING])
    first = call(tmp_path, fake, config_content=content(tmp_path), command="forget")
    second = call(tmp_path, fake, config_content=content(tmp_path), command="forget")
    assert (first["changed"], first["forgotten"]) == (True, ["aaaaaaaa"])
    assert (second["changed"], second["forgotten"]) == (False, [])
    forget = fake.calls[0].args
    assert "--json" in forget and "--keep-last" in forget and "--host" in forget
    assert "--dry-run" not in forget and "--no-lock" not in forget


def test_forget_in_check_mode_asks_without_writing(tmp_path: Path) -> None:
    fake = FakeRestic()
    fake.respond("forget", stdout=[FORGET_JSON])
    result = call(tmp_path, fake, True, config_content=content(tmp_path), command="forget")
    assert result["changed"] is True and result["forgotten"] == ["aaaaaaaa"]
    assert fake.calls[0].args[0] == "--no-lock" and "--dry-run" in fake.calls[0].args


def test_forget_failure_and_empty_policy(tmp_path: Path) -> None:
    fake = FakeRestic()
    fake.respond("forget", exit_code=1, stderr=["Fatal: unable to open repository"])
    failed = call(tmp_path, fake, config_content=content(tmp_path), command="forget")
    assert failed["failed"] is True and "unable to open repository" in failed["msg"]
    off = {f"keep_{k}": 0 for k in ("last", "hourly", "daily", "weekly", "monthly", "yearly")}
    fake = FakeRestic()
    empty = call(
        tmp_path,
        fake,
        config_content=content(tmp_path, retention={**off, "keep_within": ""}),
        command="forget",
    )
    assert empty["changed"] is False and "retention policy is empty" in empty["warnings"][0]
    assert fake.commands() == []


def test_check_and_snapshots(tmp_path: Path) -> None:
    fake = FakeRestic()
    dry = call(tmp_path, fake, True, config_content=content(tmp_path), command="check")
    assert fake.commands() == [] and dry["report"]["steps"][0]["outcome"] == "skipped"
    done = call(tmp_path, fake, config_content=content(tmp_path), command="check")
    assert fake.commands() == ["check"] and done["changed"] is False and "failed" not in done
    fake.respond("snapshots", stdout=[json.dumps([{"short_id": "1a2b3c4d"}])])
    listed = call(tmp_path, fake, True, config_content=content(tmp_path), command="snapshots")
    assert listed["snapshots"] == [{"short_id": "1a2b3c4d"}] and listed["changed"] is False


def test_lock_held_fails_with_75(tmp_path: Path) -> None:
    data = content(tmp_path)
    lock = ProcessLock(lock_key(None, data["repository"]), lock_dir=tmp_path / "locks")
    lock.acquire()
    try:
        for command in ("backup", "forget"):
            result = call(tmp_path, FakeRestic(), config_content=data, command=command)
            assert result["failed"] is True and result["exit_code"] == 75, result
            assert "lock" in result["msg"]
    finally:
        lock.release()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "one of the following is required: config, config_content"),
        ({"config": "/x.yaml", "config_content": {}}, "mutually exclusive"),
        ({"config_content": BAD_CONTENT}, "<config_content>: retention.keep_daily"),
        ({"config": "/nonexistent/resticm.yaml"}, "/nonexistent/resticm.yaml"),
        ({"config_content": {"repository": "/r", "password": "p" * 8}, "command": "prune"},
         "unknown command 'prune'"),
    ],
    ids=["neither", "both", "bad-content", "missing-file", "bad-command"],
)  # fmt: skip
def test_bad_parameters_fail_cleanly(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    result = call(tmp_path, FakeRestic(), **values)
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert "x" * 8 not in json.dumps(result) and "p" * 8 not in json.dumps(result)


@requires_restic
@pytest.mark.restic
def test_password_option_with_real_restic(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    """config_content without a password source + the password option: a real backup
    and listing, and the password appears nowhere in the results."""
    data = content(tmp_path, repository=str(repo), password=None, directories=[str(tmp_path / "d")])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text(f"not the password {PASSWORD[::-1]}\n")
    hook = write_script(tmp_path / "pre.sh", 'echo "password is [${RESTIC_PASSWORD-}]"\n')
    data["hooks"] = {"pre_backup": str(hook)}
    common = {"config_content": data, "password": PASSWORD}
    kw = {"lock_dir": tmp_path / "locks", "environ": environ, "output": RecordingSink()}
    backup = run_module(params(**common), False, **kw)
    assert "failed" not in backup, backup.get("msg")
    listed = run_module(params(command="snapshots", **common), False, **kw)
    assert [s["short_id"] for s in listed["snapshots"]] == [backup["snapshot_id"]]
    assert "warnings" not in backup  # no inline secret in config_content
    hook_output = backup["report"]["phases"][0]["hooks"][0]["output_tail"]
    assert hook_output == ["password is []"]  # never in a hook's environment
    wrong = run_module(
        params(command="snapshots", config_content=data, password="wrong-pw"), False, **kw
    )
    assert wrong["failed"] is True and "wrong-pw" not in json.dumps(wrong)
    for result in (backup, listed, wrong):
        assert PASSWORD not in json.dumps(result)


# -- documentation --------------------------------------------------------------------------


def _literals(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def test_module_file_docs_equal_the_library_docs() -> None:
    literals = _literals(MODULE_FILE)
    for name in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
        assert literals.get(name) == getattr(ansible_module, name), (
            f"{MODULE_FILE.name}: {name} differs; run python ansible_collection/sync_module_docs.py"
        )


def test_documentation_matches_the_argument_spec() -> None:
    doc = YAML(typ="safe").load(ansible_module.DOCUMENTATION)
    spec = argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, option in doc["options"].items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("choices") == spec[name].get("choices"), name
        assert option.get("default") == spec[name].get("default"), name
    assert spec["password"]["no_log"] is True
    YAML(typ="safe").load(ansible_module.EXAMPLES)
    assert {"changed", "report", "snapshot_id", "msg"} <= set(
        YAML(typ="safe").load(ansible_module.RETURN)
    )


@pytest.mark.skipif(not ANSIBLE_DOC.is_file(), reason="ansible-core is not installed")
def test_ansible_doc_renders_the_module(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env.update(
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_HOME=str(tmp_path / "home"),
        ANSIBLE_NOCOLOR="1",
    )
    proc = subprocess.run(
        [str(ANSIBLE_DOC), "--json", "resticm.core.resticm"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["resticm.core.resticm"]
    assert set(doc["doc"]["options"]) == set(argument_spec())
    assert "snapshot_id" in doc["return"]
    text = subprocess.run(
        [str(ANSIBLE_DOC), "resticm.core.resticm"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert text.returncode == 0 and "config_content" in text.stdout, text.stderr
    assert "ERROR" not in text.stderr and "WARNING" not in text.stderr, text.stderr
