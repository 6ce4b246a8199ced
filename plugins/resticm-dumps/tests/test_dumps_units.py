"""The dump types' commands, without a server: argv, credentials, checks, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dumps_testlib import make_config
from resticm_dumps import MariaDBDump, PostgreSQLDump, SQLiteDump

from resticm_core.dumps import DumpContext
from resticm_core.errors import ConfigError

SECRET = "s3cret-db-password"


def ctx(tmp_path: Path, **env: str) -> DumpContext:
    return DumpContext(env={"PATH": os.environ["PATH"], **env}, config_dir=tmp_path, dry_run=True)


def test_postgresql_password_goes_to_the_environment_never_argv(tmp_path: Path) -> None:
    source = PostgreSQLDump(host="db", port=5433, username="u", password=SECRET, databases=("a",))
    (target,) = source.targets(ctx(tmp_path))
    assert SECRET not in " ".join(target.command.argv)
    assert target.command.env["PGPASSWORD"] == SECRET
    assert target.command.argv == (
        "pg_dump", "--no-password", "--host=db", "--port=5433", "--username=u",
        "--format=plain", "--clean", "--if-exists", "--dbname=a",
    )  # fmt: skip
    assert SECRET in source.secrets()
    assert SECRET not in repr(source)


def test_mariadb_password_from_a_variable_goes_to_mysql_pwd(tmp_path: Path) -> None:
    source = MariaDBDump(username="u", password_env="DBPW", databases=("shop",))
    (target,) = source.targets(ctx(tmp_path, DBPW=SECRET))
    assert SECRET not in " ".join(target.command.argv)
    assert target.command.env["MYSQL_PWD"] == SECRET
    assert target.command.argv[-1] == "shop"
    assert "--single-transaction" in target.command.argv


def test_password_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET + "\nignored second line\n")
    source = PostgreSQLDump(password_file="pw", databases=("a",))
    (target,) = source.targets(ctx(tmp_path))
    assert target.command.env["PGPASSWORD"] == SECRET


def test_checks_name_each_problem(tmp_path: Path) -> None:
    source = PostgreSQLDump(
        password="x", password_env="Y", databases=("-oops",), format="tar", bin_dir=str(tmp_path)
    )
    problems = source.check(ctx(tmp_path))
    assert "set only one of password, password_env" in problems
    assert "password_env: the variable Y is not set in resticm's environment" in problems
    assert "invalid database name '-oops'" in problems
    assert "format must be plain or custom, got 'tar'" in problems
    assert any(p.startswith(f"{tmp_path}/pg_dump is not installed") for p in problems)


def test_error_lines_are_recognised_warnings_are_not() -> None:
    pg, maria, lite = PostgreSQLDump(), MariaDBDump(), SQLiteDump()
    assert pg.is_error_line("pg_dump: error: query failed: ERROR:  permission denied")
    assert not pg.is_error_line("pg_dump: warning: there are circular foreign-key constraints")
    assert maria.is_error_line("mariadb-dump: Couldn't execute 'SHOW TRIGGERS': denied")
    assert maria.is_error_line('mariadb-dump: Got error: 1045: "Access denied"')
    assert not maria.is_error_line("Warning: a warning that mentions no failure")
    assert lite.is_error_line("Error: near line 3: database disk image is malformed")


def test_a_database_dropped_after_listing_is_recognised() -> None:
    pg, maria = PostgreSQLDump(), MariaDBDump()
    pg_said = ['pg_dump: error: ... failed: FATAL:  database "rt_1" does not exist']
    assert pg.is_gone("rt_1", pg_said) and not pg.is_gone("rt_2", pg_said)
    maria_said = ["mariadb-dump: Got error: 1049: \"Unknown database 'shop'\" when selecting"]
    assert maria.is_gone("shop", maria_said) and not maria.is_gone("shop2", maria_said)
    source = PostgreSQLDump(databases=("all", "app"))
    assert source.was_listed("other") and not source.was_listed("app")
    assert not PostgreSQLDump(databases=("app",)).was_listed("app")


def test_dry_run_keeps_all_as_a_placeholder(tmp_path: Path) -> None:
    (target,) = MariaDBDump(host="192.0.2.1").targets(ctx(tmp_path))
    assert target.database == "all"


def test_config_errors_are_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(
            tmp_path,
            tmp_path / "repo",
            [
                {"type": "postgresql", "databases": ["a"], "prot": 1},
                {"type": "pg", "port": "five"},
            ],
        )
    text = str(info.value)
    assert "dumps[0].prot: unknown key (did you mean 'port'?)" in text
    assert "dumps[1].port:" in text and "five" in text
    with pytest.raises(ConfigError, match=r"dumps\[1\]\.name: dumps\[0\] already uses the name"):
        make_config(tmp_path, tmp_path / "repo", [{"type": "mysql"}, {"type": "mariadb"}])


def test_an_inline_database_password_needs_a_private_config(tmp_path: Path) -> None:
    from dumps_testlib import registry

    from resticm_core import load_config

    config = tmp_path / "config.yaml"
    config.write_text(
        "repository: /r\npassword_file: /etc/pw\n"
        f"dumps:\n  - type: postgresql\n    password: {SECRET}\n"
    )
    config.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        load_config(config, registry=registry())
    assert "dumps[0].password" in str(info.value) and "chmod 600" in str(info.value)
    assert SECRET not in str(info.value)
    config.chmod(0o600)
    assert load_config(config, registry=registry()).dumps[0].password == SECRET
