"""The Ansible module for real: ``ansible-playbook`` on a fleet of local hosts.

One playbook run (ansible is slow to start) against four inventory hosts, all
with ``ansible_connection=local`` and this interpreter, each with its own
config directory and restic repository. The playbook is ``examples/ansible/site.yml``
(install skipped) followed by a test play: check mode, a second backup, forget
twice, and ``snapshots`` with ``config_content`` + ``password``. Each host writes
its registered results to a JSON file the assertions read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, requires_restic, snapshot_ids, write_script

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / "ansible_collection"
SITE = ROOT / "examples" / "ansible" / "site.yml"


def _tool(name: str) -> str | None:
    """The ansible-core program installed beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


ANSIBLE_PLAYBOOK = _tool("ansible-playbook")

pytestmark = [
    requires_restic,
    pytest.mark.restic,
    pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason="ansible-core is not installed"),
]

GOOD_HOSTS = ("web1", "web2", "db1")
BAD_HOST = "bad1"

DIGEST = """\
import hashlib, os, sys
h = hashlib.sha256()
for base, dirs, files in sorted(os.walk(sys.argv[1])):
    dirs.sort()
    for name in sorted(files):
        path = os.path.join(base, name)
        h.update(path.encode() + b"\\0")
        with open(path, "rb") as f:
            h.update(f.read())
print(h.hexdigest())
"""

TEST_PLAY = """\
- import_playbook: {site}

- name: Check mode, forget, snapshots
  hosts: backup_hosts
  gather_facts: false
  vars:
    config: "{{{{ resticm_config_dir }}}}/config.yaml"
    digest: "{{{{ ansible_python_interpreter }}}} {digest} {{{{ resticm_repository }}}}"
  tasks:
    - name: Digest of the repository before check mode
      ansible.builtin.command: "{{{{ digest }}}}"
      register: before
      changed_when: false
    - name: Backup in check mode
      resticm.core.resticm:
        config: "{{{{ config }}}}"
      check_mode: true
      register: dry
    - name: Digest of the repository after check mode
      ansible.builtin.command: "{{{{ digest }}}}"
      register: after
      changed_when: false
    - name: A second backup
      resticm.core.resticm:
        config: "{{{{ config }}}}"
        tags: [second]
      register: second
    - name: Forget, check mode
      resticm.core.resticm:
        config: "{{{{ config }}}}"
        command: forget
      check_mode: true
      register: forget_dry
    - name: Forget
      resticm.core.resticm:
        config: "{{{{ config }}}}"
        command: forget
      register: forget1
    - name: Forget again
      resticm.core.resticm:
        config: "{{{{ config }}}}"
        command: forget
      register: forget2
    - name: Snapshots with an inline config and the password option
      resticm.core.resticm:
        config_content:
          repository: "{{{{ resticm_repository }}}}"
          directories: "{{{{ resticm_directories }}}}"
        password: "{{{{ resticm_password }}}}"
        command: snapshots
      register: snaps
    - name: Save the results
      ansible.builtin.copy:
        dest: "{results}/{{{{ inventory_hostname }}}}.json"
        content: >-
          {{{{ {{'first': resticm_result, 'before': before.stdout, 'after': after.stdout,
              'dry': dry, 'second': second, 'forget_dry': forget_dry,
              'forget1': forget1, 'forget2': forget2, 'snaps': snaps}} | to_json }}}}
        mode: "0600"
"""


def _inventory(tmp_path: Path, template_repo: Path) -> dict[str, Any]:
    hosts: dict[str, Any] = {}
    for name in (*GOOD_HOSTS, BAD_HOST):
        home = tmp_path / name
        (home / "data").mkdir(parents=True)
        (home / "data" / "file.txt").write_text(f"data of {name}\n")
        shutil.copytree(template_repo, home / "repo")
        hosts[name] = {
            "resticm_config_dir": str(home / "etc"),
            "resticm_repository": str(home / "repo"),
            "resticm_directories": [str(home / "data")],
            "resticm_log_file": str(home / "resticm.log"),
        }
    failing = write_script(
        tmp_path / "failing-pre-backup.sh", "echo 'database dump failed: disk full' >&2\nexit 1\n"
    )
    hosts[BAD_HOST]["resticm_pre_backup_hook"] = str(failing)
    return {
        "all": {
            "children": {
                "backup_hosts": {
                    "hosts": hosts,
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                        "resticm_install": False,
                        "resticm_password": PASSWORD,
                        # keep one snapshot only, so forget has something to remove
                        "resticm_keep": {
                            "keep_last": 1,
                            "keep_within": "",
                            "keep_hourly": 0,
                            "keep_daily": 0,
                            "keep_weekly": 0,
                            "keep_monthly": 0,
                            "keep_yearly": 0,
                        },
                    },
                }
            }
        },
    }


def _ansible_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "ANSIBLE_"))}
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env.update(
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_REMOTE_TMP=str(tmp_path / "ansible-remote"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        RESTIC_CACHE_DIR=str(tmp_path / "restic-cache"),
    )
    return env


def _run_fleet(tmp_path: Path, template_repo: Path) -> dict[str, Any]:
    """Run the playbook once; every check below reads what it did."""
    results = tmp_path / "results"
    results.mkdir()
    digest = tmp_path / "digest.py"
    digest.write_text(DIGEST)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(_inventory(tmp_path, template_repo)))
    playbook = tmp_path / "fleet.yml"
    playbook.write_text(TEST_PLAY.format(site=SITE, digest=digest, results=results))
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-v", "-i", str(inventory), str(playbook)],
        env=_ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    (tmp_path / "ansible.out").write_text(proc.stdout + proc.stderr)  # for debugging
    per_host = {p.stem: json.loads(p.read_text()) for p in results.glob("*.json")}
    return {"proc": proc, "results": per_host, "tmp": tmp_path}


def _recap(stdout: str) -> dict[str, dict[str, int]]:
    recap = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", stdout, re.M):
        recap[match.group(1)] = {
            k: int(v) for k, v in (pair.split("=") for pair in match.group(2).split())
        }
    return recap


def _every_good_host_backs_up_and_the_failing_one_fails_alone(fleet: dict[str, Any]) -> None:
    proc, results = fleet["proc"], fleet["results"]
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output  # 2: some hosts failed
    recap = _recap(proc.stdout)
    assert recap[BAD_HOST]["failed"] == 1, proc.stdout
    for host in GOOD_HOSTS:
        assert recap[host]["failed"] == 0, proc.stdout
        first = results[host]["first"]
        assert first["changed"] is True
        assert re.fullmatch(r"[0-9a-f]{8}", first["snapshot_id"])
        assert [s["name"] for s in first["report"]["steps"]] == ["preflight", "backup"]
        # the example's pre_backup hook ran and its dump was backed up
        assert (fleet["tmp"] / host / "etc" / "dump" / "packages.txt").exists()
    assert set(results) == set(GOOD_HOSTS)  # bad1 stopped after its failure
    # a clear message, naming the hook and carrying its stderr
    fatal = [line for line in proc.stdout.splitlines() if line.startswith(f"fatal: [{BAD_HOST}]")]
    assert fatal, proc.stdout
    assert "pre-backup.sh" in fatal[0] and "database dump failed: disk full" in fatal[0]
    assert "Traceback" not in output and "[WARNING]" not in output
    bad_repo = fleet["tmp"] / BAD_HOST / "repo"
    assert snapshot_ids(bad_repo, fleet["tmp"] / "restic-cache") == []
    # on_error of the example recorded the failure on the bad host
    assert "pre-backup.sh" in (fleet["tmp"] / BAD_HOST / "etc" / "last-error.log").read_text()
    # the summary play reports every host, the failed one included
    summary = re.search(r'"msg": "(web1: ok .*)"', proc.stdout)
    assert summary, proc.stdout
    assert "bad1: FAILED" in summary.group(1) and "db1: ok snapshot" in summary.group(1)


def _config_is_private_and_the_password_never_shows(fleet: dict[str, Any]) -> None:
    proc = fleet["proc"]
    for host in GOOD_HOSTS:
        etc = fleet["tmp"] / host / "etc"
        assert (etc / "config.yaml").stat().st_mode & 0o777 == 0o600
        assert (etc / "password").stat().st_mode & 0o777 == 0o600
        assert (etc / "hooks" / "pre-backup.sh").stat().st_mode & 0o777 == 0o700
        # the module logs to the config's log file, as the CLI does
        log = (fleet["tmp"] / host / "resticm.log").read_text()
        assert "resticm backup finished with exit code 0" in log
        assert PASSWORD not in log
    assert PASSWORD not in proc.stdout + proc.stderr
    for result in fleet["results"].values():
        assert PASSWORD not in json.dumps(result)


def _check_mode_changes_nothing(fleet: dict[str, Any]) -> None:
    for host in GOOD_HOSTS:
        result = fleet["results"][host]
        assert result["before"] == result["after"]  # repository byte-identical
        dry = result["dry"]
        assert dry["changed"] is True  # a snapshot would be written
        assert dry["snapshot_id"] is None
        assert dry["report"]["dry_run"] is True
        assert {s["name"]: s["outcome"] for s in dry["report"]["steps"]}["backup"] == "skipped"


def _forget_removes_once_then_is_idempotent(fleet: dict[str, Any]) -> None:
    for host in GOOD_HOSTS:
        result = fleet["results"][host]
        first, second = result["first"]["snapshot_id"], result["second"]["snapshot_id"]
        assert result["forget_dry"]["changed"] is True
        assert result["forget_dry"]["forgotten"] == [first]
        assert result["forget1"]["changed"] is True
        assert result["forget1"]["forgotten"] == [first]
        assert result["forget2"]["changed"] is False
        assert result["forget2"]["forgotten"] == []
        snaps = result["snaps"]
        assert snaps["changed"] is False
        assert [s["short_id"] for s in snaps["snapshots"]] == [second]


def test_fleet_playbook(tmp_path: Path, template_repo: Path) -> None:
    """One ansible-playbook run (ansible starts slowly), checked from four sides.

    A single test so that pytest-xdist never runs the playbook twice."""
    fleet = _run_fleet(tmp_path, template_repo)
    _every_good_host_backs_up_and_the_failing_one_fails_alone(fleet)
    _config_is_private_and_the_password_never_shows(fleet)
    _check_mode_changes_nothing(fleet)
    _forget_removes_once_then_is_idempotent(fleet)
