"""Configs that span files and hold jobs (issue 18): merge rules, includes, conf.d,
``${...}`` variables and secret references, each problem located in the right file.

Real files in tmp_path (mode 600 unless permissions are tested), an explicit
environment: nothing depends on the machine's /etc, $HOME or variables.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from resticm_core.config_file import load_config, load_job_set
from resticm_core.errors import ConfigError, UsageError
from resticm_core.jobs import JobSet, overall_exit_code
from resticm_core.plugin_manager import PluginRegistry
from resticm_core.secrets import Redactor

from .test_config_loading import write

IS_ROOT = os.geteuid() == 0
SECRET = "s3cr3t-from-a-file"


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return PluginRegistry.default()


def jobs(path: Path, registry: PluginRegistry, **environ: str) -> JobSet:
    return load_job_set(path, registry=registry, environ=environ)


def problems(path: Path, registry: PluginRegistry, **environ: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        jobs(path, registry, **environ)
    return info.value.messages


TWO_JOBS = """
    repository: /srv/default
    password: pw-top-level
    exclude_patterns: ["*.tmp", "*.cache"]
    default_tags: [nightly]
    retention: {keep_daily: 3, keep_weekly: 2}
    hooks:
      environment: {SITE: all}
    jobs:
      web:
        repository: /srv/web
        directories: [/var/www]
        retention: {keep_daily: 9}
        hooks:
          environment: {ROLE: web}
        schedule: "*-*-* 02:30"
      db:
        directories: [/var/lib/db]
        exclude_patterns: !reset
        default_tags: !reset [db]
"""


def test_jobs_inherit_maps_merge_lists_replace_and_reset_clears(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    loaded = jobs(write(tmp_path / "config.yaml", TWO_JOBS), registry)
    assert loaded.names == ["web", "db"] and loaded.single is None
    web, db = loaded.jobs["web"], loaded.jobs["db"]
    assert (web.job, web.repository, db.repository) == ("web", "/srv/web", "/srv/default")
    # maps merge key by key: keep_weekly inherited, keep_daily the job's own
    assert (web.retention.keep_daily, web.retention.keep_weekly) == (9, 2)
    assert dict(web.hooks.environment) == {"SITE": "all", "ROLE": "web"}
    # lists replace; !reset alone gives the default back, !reset VALUE replaces
    assert web.exclude_patterns == ("*.tmp", "*.cache") and db.exclude_patterns == ()
    assert web.default_tags == ("nightly",) and db.default_tags == ("db",)
    assert (web.schedule, db.schedule) == ("*-*-* 02:30", None)
    assert web.source_path == db.source_path == (tmp_path / "config.yaml").resolve()


def test_a_file_without_jobs_is_one_config_as_before(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    path = write(tmp_path / "config.yaml", "repository: /r\npassword: pw-123456\n")
    loaded = jobs(path, registry)
    assert not loaded.has_jobs and loaded.single is not None and loaded.single.job is None
    assert load_config(path, registry=registry, environ={}).repository == "/r"
    with pytest.raises(UsageError, match="defines no jobs"):
        loaded.job("web")


def test_selecting_jobs(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path / "config.yaml", textwrap.dedent(TWO_JOBS) + "run_jobs: [db]\n")
    loaded = jobs(path, registry)
    assert [c.job for c in loaded.selected(None)] == ["db"]
    assert [c.job for c in loaded.selected("web")] == ["web"]
    with pytest.raises(UsageError) as info:
        loaded.one(None, "snapshots")
    assert "choose one with -j NAME (jobs: web, db)" in str(info.value)
    with pytest.raises(UsageError, match=r"no such job in .* \(jobs: web, db\)"):
        loaded.job("mail")
    with pytest.raises(UsageError, match="-j NAME"):
        load_config(path, registry=registry, environ={})
    assert load_config(path, registry=registry, environ={}, job="db").job == "db"


def test_errors_name_the_job_key_path_and_line(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(
        tmp_path / "config.yaml",
        """
        repository: /r
        password: pw-123456
        jobs:
          web:
            retention:
              keep_daily: -1
          bad name: {}
        run_jobs: [web, mail]
        """,
    )
    assert problems(path, registry) == [
        f"{path}:7: jobs.bad name: job name 'bad name': use letters, digits, '-', '_', '.'",
        f"{path}:8: run_jobs[1]: unknown job 'mail' (jobs: web, bad name)",
        f"{path}:6: jobs.web.retention.keep_daily: must be 0 (off) or more, got -1",
    ]


def test_an_inherited_problem_is_reported_once_where_it_is_written(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    path = write(
        tmp_path / "config.yaml",
        """
        repository: /r
        password: pw-123456
        retries: -3
        jobs:
          a: {directories: [/a]}
          b: {directories: [/b]}
        """,
    )
    assert problems(path, registry) == [f"{path}:3: retries: must be 0 (off) or more, got -3"]


def test_conf_d_merges_in_name_order_and_errors_name_its_file(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    main = write(tmp_path / "config.yaml", "password: pw-123456\nrepository: /r\n")
    write(tmp_path / "conf.d" / "20-db.yaml", "jobs:\n  db: {directories: [/db]}\n")
    write(tmp_path / "conf.d" / "10-web.yaml", "jobs:\n  web: {directories: [/web]}\n")
    write(tmp_path / "conf.d" / "notes.txt", "not yaml: [")  # only *.yaml is read
    loaded = jobs(main, registry)
    assert loaded.names == ["web", "db"]
    assert loaded.jobs["db"].directories == ("/db",)
    bad = write(
        tmp_path / "conf.d" / "30-mail.yaml",
        "jobs:\n  mail:\n    directories: [/m]\n    hooks:\n      pre_backup:\n"
        "        - {kind: script, path: /bin/true, timeout: soon}\n",
    )
    assert problems(main, registry) == [
        f"{bad}:6: jobs.mail.hooks.pre_backup[0].timeout: expected a number of seconds "
        "(or like '10m'), got 'soon'"
    ]


def test_includes_are_relative_merged_below_and_checked(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    write(tmp_path / "common" / "base.yaml", "password: pw-123456\nretries: 5\n")
    write(
        tmp_path / "common" / "retention.yaml",
        "include: [base.yaml]\nretention: {keep_daily: 1}\n",
    )
    main = write(
        tmp_path / "config.yaml",
        "include: [common/retention.yaml]\nrepository: /r\nretries: 1\n",
    )
    config = jobs(main, registry).single
    assert config is not None
    # the including file wins over what it includes
    assert (config.retries, config.retention.keep_daily, config.password) == (1, 1, "pw-123456")
    # an included file is held to the main file's rules
    writable = tmp_path / "common" / "base.yaml"
    writable.chmod(0o620)
    assert problems(main, registry) == [
        f"{writable} is writable by group or others (mode 0620), and it names programs "
        f"resticm runs (fix: chmod 600 {writable})"
    ]


def test_include_errors_are_located(tmp_path: Path, registry: PluginRegistry) -> None:
    main = write(tmp_path / "config.yaml", "repository: /r\ninclude:\n  - a.yaml\n  - gone.yaml\n")
    write(tmp_path / "a.yaml", "password: pw-123456\ninclude: [config.yaml]\n")
    real, a = main.resolve(), (tmp_path / "a.yaml").resolve()
    assert problems(main, registry) == [
        f"{tmp_path / 'a.yaml'}:2: include[0]: config.yaml: include cycle: {real} -> {a} -> {real}",
        f"{main}:4: include[1]: gone.yaml: file not found ({tmp_path / 'gone.yaml'})",
    ]


def test_a_missing_variable_is_a_located_error(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(
        tmp_path / "config.yaml",
        """
        repository: /srv/${HOST_NAME:-default}/repo
        password: pw-123456
        host: ${HOST_NAME:-}
        retention:
          keep_within: ${WITHIN:-30d}
          keep_daily: ${DAYS}
        """,
    )
    assert problems(path, registry) == [
        f"{path}:6: retention.keep_daily: ${{DAYS}}: variable DAYS is not set"
    ]
    config = jobs(path, registry, DAYS="12", HOST_NAME="web1").single
    assert config is not None
    # a value that is only a variable reads as YAML would read it: 12 is a number
    assert (config.repository, config.host) == ("/srv/web1/repo", "web1")
    assert (config.retention.keep_daily, config.retention.keep_within) == (12, "30d")


def test_escapes_and_hook_entries_keep_their_dollars(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    secret = write(tmp_path / "hook.secret", SECRET + "\n")
    path = write(
        tmp_path / "config.yaml",
        f"""
        repository: /r
        password: pa$$word-$x-$${{literal}}
        hooks:
          environment: {{DIR: "${{BASE}}/dumps"}}
          pre_backup:
            - kind: verify-files
              paths: ["${{DIR}}/db.sql", "${{DIR:-/x}}/$$"]
            - kind: script
              path: /bin/echo
              args: ["${{file:{secret}}}", "${{name:2}}"]
        """,
    )
    config = jobs(path, registry, BASE="/var").single
    assert config is not None
    # $$ and $x are left alone; $${ writes ${
    assert config.password == "pa$$word-$x-${literal}"
    assert dict(config.hooks.environment) == {"DIR": "/var/dumps"}
    # hook entries: the hook expands ${VAR} from its environment at run time
    verify, script = config.hooks.pre_backup
    assert list(verify.paths) == ["${DIR}/db.sql", "${DIR:-/x}/$$"]  # type: ignore[attr-defined]
    # ... but a secret reference is resolved, and a shell ${name:2} left alone
    assert list(script.args) == [SECRET, "${name:2}"]  # type: ignore[attr-defined]
    assert SECRET in config.secrets()


def test_secret_references_resolve_and_are_redacted(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    write(tmp_path / "creds" / "restic", "credential-password\n")
    s3 = write(tmp_path / "s3.key", "AKIA-secret-key\n")
    path = write(
        tmp_path / "config.yaml",
        f"""
        repository: s3:https://s3.example/bucket
        password: ${{credential:restic}}
        aws_access_key_id: AKIAPUBLIC
        aws_secret_access_key: ${{file:{s3}}}
        env:
          B2_ACCOUNT_ID: ${{env:ODD_NAME}}
        """,
        # readable by others: references are no inline secret
        mode=0o644,
    )
    config = jobs(
        path, registry, CREDENTIALS_DIRECTORY=str(tmp_path / "creds"), ODD_NAME="env-held-value"
    ).single
    assert config is not None
    assert config.password == "credential-password"
    assert config.aws_secret_access_key == "AKIA-secret-key"
    # B2_ACCOUNT_ID is no secret by its name; from ${env:...} it is redacted anyway
    redactor = Redactor(config.secrets())
    text = "credential-password AKIA-secret-key env-held-value"
    assert redactor.redact(text) == "*** *** ***"


def test_secret_reference_errors(tmp_path: Path, registry: PluginRegistry) -> None:
    loose = write(tmp_path / "loose.key", "shared\n", mode=0o640)
    path = write(
        tmp_path / "config.yaml",
        f"""
        repository: /r
        password: ${{credential:restic}}
        aws_secret_access_key: ${{file:{loose}}}
        env:
          A_TOKEN: ${{env:MISSING}}
          B_TOKEN: ${{vault:x}}
          C_TOKEN: ${{keyring:svc/user}}
        """,
    )
    found = problems(path, registry)
    assert found[0].startswith(
        f"{path}:2: password: ${{credential:restic}}: $CREDENTIALS_DIRECTORY is not set"
    )
    assert found[1] == (
        f"{path}:3: aws_secret_access_key: ${{file:{loose}}}: file {loose} is readable or "
        f"writable by group or others (mode 0640; fix: chmod 600 {loose})"
    )
    assert found[2] == (
        f"{path}:5: env.A_TOKEN: ${{env:MISSING}}: environment variable MISSING is not set"
    )
    assert found[3].startswith(
        f"{path}:6: env.B_TOKEN: ${{vault:x}}: no secret provider handles 'vault'"
    )
    try:
        import keyring  # noqa: F401
    except ImportError:
        assert found[4].startswith(
            f"{path}:7: env.C_TOKEN: ${{keyring:svc/user}}: the keyring package is not installed"
        )
    assert "shared" not in "\n".join(found)


def test_overall_exit_code_is_the_worst() -> None:
    assert overall_exit_code([]) == 0
    assert overall_exit_code([0, 3, 0]) == 3
    assert overall_exit_code([3, 75]) == 75
    assert overall_exit_code([75, 1, 3]) == 1
    assert overall_exit_code([1, 143, 0]) == 143
    assert overall_exit_code([0, 2]) == 2


def test_a_quoted_variable_stays_a_string(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(
        tmp_path / "config.yaml",
        """
        repository: /r
        password: pw-123456
        host: "${NUM}"
        retries: ${NUM}
        env: {PORT: '${NUM}'}
        """,
    )
    config = jobs(path, registry, NUM="5").single
    assert config is not None
    assert (config.host, config.retries, dict(config.env)) == ("5", 5, {"PORT": "5"})


def test_run_jobs_needs_jobs(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path / "config.yaml", "repository: /r\npassword: pw-123456\nrun_jobs: [a]\n")
    assert problems(path, registry) == [
        f"{path}:3: run_jobs: run_jobs needs jobs: (this file defines no jobs)"
    ]
