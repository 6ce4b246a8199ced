"""``resticm config validate --from-go [--write]`` on a config of the Go tool (issue 16)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

#: Every key of the Go format (reference/resticm-spec.md §3.1), commented as users do,
#: with what the Go tool accepted and the strict loader refuses: YAML 1.1 booleans,
#: unknown keys (a typo the Go tool silently ignored).
GO_CONFIG = """\
# resticm configuration (Go format)
repository: "{repo}"          # primary repository
password: "s3cret-pass"        # inline, so the file is 0600
aws_access_key_id: ""
aws_secret_access_key: ""
directories:                   # what to back up
  - {src}
exclude_patterns:
  - "*.tmp"
exclude_file: ""
retention:                     # the Go defaults, spelled out
  keep_within: "7d"
  keep_hourly: 24
  keep_daily: 7
  keep_weekly: 4
  keep_monthly: 12
  keep_yearly: 5
deep_check_interval_days: 30
default_tags:
  - nightly
backends:
  offsite:
    repository: "{offsite}"
    password: "offsite-pass"
    aws_access_key_id: ""
    aws_secret_access_key: ""
copy_to_backends:
  - offsite
hooks:
  pre_backup: ""               # no hook
  post_backup: ""
  on_error: ""
  on_success: ""
notifications:
  enabled: yes                 # yaml.v3 read this as true
  notify_on_success: off
  notify_on_error: on
  providers:
    - type: ntfy
      url: "http://127.0.0.1:9/resticm"
      token: ""
      channel: ""
      options:
        priority: "high"
logging:
  file: "{log}"
  max_size_mb: 10
  max_files: 5
  level: info
  console: yes
  json: no
  colour: true                 # a typo the Go tool ignored
verify_no_locks: no
# end of file
"""


def resticm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        capture_output=True, text=True, timeout=120,
    )


def go_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        GO_CONFIG.format(
            repo=tmp_path / "repo", src=tmp_path, offsite=tmp_path / "offsite",
            log=tmp_path / "log" / "resticm.log",
        )
    )
    path.chmod(0o600)
    return path


def comments(text: str) -> list[str]:
    return [m.group(0).strip() for m in re.finditer(r"#.*$", text, re.MULTILINE)]


def test_from_go_lists_each_refusal_located(tmp_path: Path) -> None:
    cfg = go_config(tmp_path)
    strict = resticm("-c", str(cfg), "config", "validate")
    assert strict.returncode == 2  # what a user switching binaries meets first
    result = resticm("-c", str(cfg), "config", "validate", "--from-go")
    assert result.returncode == 2, result.stderr
    out = result.stdout
    assert f"{cfg}:35: notifications.enabled: expected true or false, got 'yes'" in out
    assert f"{cfg}:36: notifications.notify_on_success: expected true or false, got 'off'" in out
    assert f"{cfg}:52: logging.colour: unknown key" in out
    assert f"{cfg}:53: verify_no_locks: expected true or false, got 'no'" in out
    assert "--dry-run runs nothing" in out and "exit codes: 2" in out
    assert "missing now fails" not in out  # no hook is configured, so no such change
    assert "s3cret-pass" not in out
    assert cfg.read_text() == go_config(tmp_path).read_text()  # nothing written


def test_from_go_write_gives_a_file_the_strict_loader_accepts_with_every_comment(
    tmp_path: Path,
) -> None:
    cfg = go_config(tmp_path)
    before = cfg.read_text()
    result = resticm("-c", str(cfg), "config", "validate", "--from-go", "--write", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["written"] is True
    assert {f["path"] for f in doc["fixes"]} == {
        "notifications.enabled", "notifications.notify_on_success",
        "notifications.notify_on_error", "logging.console", "logging.json",
        "logging.colour", "verify_no_locks",
    }
    after = cfg.read_text()
    assert Path(doc["backup"]).read_text() == before
    assert cfg.stat().st_mode & 0o777 == 0o600
    # every comment of the user kept, one added where the unknown key was
    kept = comments(after)
    note = next(c for c in kept if "removed by resticm" in c)
    assert "'colour: true'" in note and "the Go tool ignored it" in note
    # the removed line's own comment travels with the note
    assert note.endswith("# a typo the Go tool ignored")
    assert [c for c in kept if c != note] == [
        c for c in comments(before) if c != "# a typo the Go tool ignored"
    ]
    # quoting and layout kept; only the fixed lines differ
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=False) if a != b
    ]
    # (ruamel keeps a comment's column, so a shorter value moves it by nothing else)
    assert (" enabled: yes # yaml.v3 read this as true",
            " enabled: true # yaml.v3 read this as true") in [
        (re.sub(r" +", " ", a), re.sub(r" +", " ", b)) for a, b in changed
    ]
    fixed_keys = ("enabled", "notify_on", "console", "json", "colour", "verify_no_locks")
    assert all(any(k in a for k in fixed_keys) for a, _ in changed), changed
    assert 'password: "s3cret-pass"        # inline, so the file is 0600' in after
    validate = resticm("-c", str(cfg), "config", "validate", "--json")
    assert validate.returncode == 0, validate.stderr
    show = json.loads(resticm("-c", str(cfg), "info", "--json").stdout)
    assert show["notifications"]["enabled"] is True


def test_write_needs_from_go(tmp_path: Path) -> None:
    result = resticm("-c", str(go_config(tmp_path)), "config", "validate", "--write")
    assert result.returncode == 2
    assert "--write needs --from-go" in result.stderr
