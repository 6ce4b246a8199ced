"""``resticm status`` against real restic repositories, a real closed port, real runs;
the Grafana dashboard and the alert rules against the metrics a real run writes."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from resticm_core.state import DeepCheckState
from resticm_core.status import Health, human_age, worst

from .conftest import PASSWORD, requires_restic, restic_env

parser = pytest.importorskip("prometheus_client.parser")

HOST = "status-host"
URL_SECRET = "url-secret-4711"
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "monitoring"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def backup(tmp_path: Path, repo: Path, source: Path, host: str = HOST) -> None:
    subprocess.run(
        ["restic", "backup", "-q", "--host", host, str(source)],
        env=restic_env(tmp_path / "cache", repo),
        check=True,
        capture_output=True,
    )


class Setup:
    """Three real repositories (primary + two copy backends), a config file, the env."""

    def __init__(self, tmp_path: Path, template: Path, source: Path, environ: dict[str, str]):
        self.tmp = tmp_path
        self.source = source
        self.repos = {}
        for name in ("primary", "m1", "m2"):
            target = tmp_path / f"repo-{name}"
            shutil.copytree(template, target)
            self.repos[name] = target
        self.env = {**environ, "HOME": str(tmp_path / "home")}
        self.cfg = tmp_path / "config.yaml"
        self.data: dict[str, Any] = {
            "repository": str(self.repos["primary"]),
            "password": PASSWORD,
            "directories": [str(source)],
            "host": HOST,
            "retention": {"keep_last": 100},
            "backends": {
                name: {"repository": str(self.repos[name]), "password": PASSWORD}
                for name in ("m1", "m2")
            },
            "copy_to_backends": ["m1", "m2"],
            "logging": {"file": "", "console": False},
            "monitoring": {
                "prometheus_textfile": str(tmp_path / "resticm.prom"),
                "status_file": str(tmp_path / "status.json"),
            },
        }
        self.write()

    def write(self, **changes: Any) -> None:
        self.data.update(changes)
        self.cfg.write_text(json.dumps(self.data))
        self.cfg.chmod(0o600)

    def backup_all(self) -> None:
        for repo in self.repos.values():
            backup(self.tmp, repo, self.source)

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cli("-c", str(self.cfg), "status", *args, env=self.env)

    def status_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        out = self.status("--json", *args)
        assert out.stdout, out.stderr
        return out.returncode, json.loads(out.stdout)


@pytest.fixture
def setup(
    tmp_path: Path, template_repo: Path, source: Path, environ: dict[str, str]
) -> Setup:
    return Setup(tmp_path, template_repo, source, environ)


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in document["repositories"]}


def samples(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a textfile through prometheus_client's own parser."""
    found = {}
    for family in parser.text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return found


def labels(repository: str) -> frozenset[tuple[str, str]]:
    return frozenset({"host": HOST, "repository": repository}.items())


# -- the verdicts ------------------------------------------------------------------------------


@requires_restic
def test_fresh_repositories_are_ok(setup: Setup) -> None:
    setup.backup_all()
    out = setup.status("--max-age", "26h")
    assert out.returncode == 0, out.stdout + out.stderr
    first, *table = out.stdout.splitlines()
    assert first.startswith("RESTICM OK - 3 repositories ok")
    assert "'primary_age'=" in first and ";93600" in first  # Nagios performance data
    assert table[0].split() == [
        "REPOSITORY", "SNAPSHOT", "AGE", "SIZE", "COUNT", "LAST", "RUN", "DEEP", "CHECK", "STATE"
    ]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {"primary", "m1", "m2"}
    # (the SIZE column is "-" on restic 0.14 and "1.2 KiB" on 0.17+: count from the JSON)
    assert all(row[-1] == "OK" for row in rows.values())
    code, doc = setup.status_json("--max-age", "26h")
    assert code == 0 and doc["state"] == "ok" and doc["host"] == HOST
    assert all(entry["snapshots"] == 1 for entry in by_name(doc).values())
    primary = by_name(doc)["primary"]
    assert primary["snapshots"] == 1 and primary["max_age_seconds"] == 93600
    assert re.fullmatch(r"[0-9a-f]{64}", primary["newest"]["id"])
    assert 0 <= primary["newest"]["age_seconds"] < 3600
    # restic 0.14 has no snapshot summary: no size, said as null (0.17+: a number).
    assert primary["newest"]["size"] is None or primary["newest"]["size"] > 0


@requires_restic
def test_count_and_newest_come_from_one_call_of_this_host_only(setup: Setup) -> None:
    backup(setup.tmp, setup.repos["primary"], setup.source)
    (setup.source / "new.txt").write_text("new\n")
    backup(setup.tmp, setup.repos["primary"], setup.source)
    backup(setup.tmp, setup.repos["primary"], setup.source, host="another-host")
    verbose = cli("-c", str(setup.cfg), "-v", "status", "-b", "primary", env=setup.env)
    calls = [line for line in verbose.stderr.splitlines() if line.startswith("$ restic")]
    assert len(calls) == 1 and "--no-lock snapshots --json --host status-host" in calls[0]
    code, doc = setup.status_json("-b", "primary")
    assert code == 0 and by_name(doc)["primary"]["snapshots"] == 2


@requires_restic
def test_max_age_exceeded_is_critical(setup: Setup) -> None:
    setup.backup_all()
    time.sleep(1.5)
    out = setup.status("--max-age", "1s")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout.startswith("RESTICM CRITICAL - primary: newest snapshot is ")
    assert "m2: newest snapshot is" in out.stdout and "(max age 1s)" in out.stdout


@requires_restic
def test_warn_age_is_a_warning_and_a_repository_max_age_wins(setup: Setup) -> None:
    setup.backup_all()
    time.sleep(1.5)
    code, doc = setup.status_json("--max-age", "1h", "--warn-age", "1s")
    assert code == 1 and {r["state"] for r in doc["repositories"]} == {"warning"}
    # m1's own max_age beats --max-age; the top-level one is the primary's.
    backends = setup.data["backends"]
    setup.write(max_age="1s", backends={**backends, "m1": {**backends["m1"], "max_age": "2h"}})
    code, doc = setup.status_json("--max-age", "3h")
    states = {r["name"]: (r["state"], r["max_age_seconds"]) for r in doc["repositories"]}
    assert code == 2
    assert states == {"primary": ("critical", 1), "m1": ("ok", 7200), "m2": ("ok", 10800)}
    # Without --max-age, a backend that sets none inherits the top-level max_age.
    code, doc = setup.status_json()
    assert code == 2 and by_name(doc)["m2"]["max_age_seconds"] == 1


@requires_restic
def test_a_repository_without_a_snapshot_of_this_host_is_critical(setup: Setup) -> None:
    backup(setup.tmp, setup.repos["primary"], setup.source)
    backup(setup.tmp, setup.repos["m1"], setup.source, host="another-host")
    code, doc = setup.status_json("-b", "primary,m1")
    assert code == 2
    assert by_name(doc)["m1"]["reasons"] == [f"no snapshot of host {HOST}"]
    assert by_name(doc)["primary"]["state"] == "ok"


@requires_restic
def test_an_unreachable_mirror_is_unknown_with_the_reason(setup: Setup) -> None:
    setup.backup_all()
    url = f"rest:http://user:{URL_SECRET}@127.0.0.1:{closed_port()}/repo"
    backends = setup.data["backends"]
    setup.write(backends={**backends, "m2": {"repository": url, "password": PASSWORD}})
    out = setup.status("--max-age", "26h")
    assert out.returncode == 3, out.stdout + out.stderr
    assert out.stdout.startswith("RESTICM UNKNOWN - m2: restic snapshots failed on m2")
    assert "connection refused" in out.stdout
    assert URL_SECRET not in out.stdout + out.stderr
    code, doc = setup.status_json("--max-age", "26h")
    m2 = by_name(doc)["m2"]
    assert code == 3 and m2["state"] == "unknown" and m2["snapshots"] is None
    assert "connection refused" in m2["reasons"][0] and URL_SECRET not in json.dumps(doc)
    assert by_name(doc)["primary"]["state"] == "ok"  # the others are still read


@requires_restic
def test_a_stale_repository_outranks_an_unreachable_one(setup: Setup) -> None:
    setup.backup_all()
    backends = setup.data["backends"]
    url = f"rest:http://127.0.0.1:{closed_port()}/repo"
    setup.write(backends={**backends, "m2": {"repository": url, "password": PASSWORD}})
    time.sleep(1.5)
    assert setup.status("--max-age", "1s").returncode == 2


@requires_restic
def test_the_last_run_failed_is_critical(setup: Setup) -> None:
    setup.write(directories=[str(setup.tmp / "does-not-exist")], copy_to_backends=[])
    run = cli("-c", str(setup.cfg), "backup", env=setup.env)
    assert run.returncode != 0
    backup(setup.tmp, setup.repos["primary"], setup.source)  # a fresh snapshot all the same
    out = setup.status("--max-age", "26h")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "primary: last backup failed (" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("primary "))
    assert " failed " in row and row.endswith("CRITICAL")
    code, doc = setup.status_json()
    last = by_name(doc)["primary"]["last_run"]
    assert code == 2 and last["step"] == "backup" and last["outcome"] == "failed"
    # The next good run clears it.
    setup.write(directories=[str(setup.source)])
    assert cli("-c", str(setup.cfg), "backup", env=setup.env).returncode == 0
    assert setup.status("--max-age", "26h").returncode == 0


@requires_restic
def test_a_failed_check_is_critical(setup: Setup) -> None:
    setup.backup_all()
    setup.write(copy_to_backends=[], retries=0)
    for pack in [p for p in (setup.repos["primary"] / "data").rglob("*") if p.is_file()]:
        pack.unlink()  # the index names packs that are gone: a plain check fails fast
    run = cli("-c", str(setup.cfg), "check", env=setup.env)
    assert run.returncode == 1, run.stdout + run.stderr
    code, doc = setup.status_json("--max-age", "26h")
    primary = by_name(doc)["primary"]
    assert code == 2 and primary["last_check"]["outcome"] == "failed"
    assert any(r.startswith("last check failed") for r in primary["reasons"])


@requires_restic
def test_the_last_deep_check_from_the_state(setup: Setup) -> None:
    setup.backup_all()
    setup.write(copy_to_backends=[])
    assert cli("-c", str(setup.cfg), "check", "--deep", env=setup.env).returncode == 0
    code, doc = setup.status_json()
    deep = by_name(doc)["primary"]["last_deep_check"]
    assert code == 0 and deep is not None and abs(deep - time.time()) < 600
    out = setup.status()
    row = next(line for line in out.stdout.splitlines() if line.startswith("primary "))
    assert time.strftime("%Y-%m-%d", time.localtime(deep)) in row
    # Another config's repository also called "primary": the id (cat config) decides.
    state = DeepCheckState(Path(setup.env["RESTICM_STATE_DIR"]))
    state.record_deep_check("0" * 64, "primary")
    verbose = cli("-c", str(setup.cfg), "-v", "status", "--json", env=setup.env)
    assert json.loads(verbose.stdout)["repositories"][0]["last_deep_check"] == deep
    assert "--no-lock cat config" in verbose.stderr


# -- the metrics -------------------------------------------------------------------------------


@requires_restic
def test_a_backup_run_writes_the_snapshot_age_metrics(setup: Setup) -> None:
    setup.write(copy_to_backends=[])
    before = time.time()
    run = cli("-c", str(setup.cfg), "backup", env=setup.env)
    assert run.returncode == 0, run.stderr
    found = samples(setup.tmp / "resticm.prom")
    latest = found[("resticm_snapshot_latest_timestamp_seconds", labels("primary"))]
    assert before - 5 <= latest <= time.time()
    age = found[("resticm_snapshot_age_seconds", labels("primary"))]
    counted = found[("resticm_snapshots_timestamp_seconds", labels("primary"))]
    assert age == pytest.approx(counted - latest, abs=0.01) and 0 <= age < 600
    status = json.loads((setup.tmp / "status.json").read_text())
    assert status["repositories"]["primary"]["snapshots"]["latest"] == latest


@requires_restic
def test_status_textfile_updates_the_metrics_and_keeps_the_others(setup: Setup) -> None:
    setup.write(copy_to_backends=[])
    assert cli("-c", str(setup.cfg), "backup", env=setup.env).returncode == 0
    setup.write(copy_to_backends=["m1", "m2"])
    backup(setup.tmp, setup.repos["m1"], setup.source)
    time.sleep(1.1)
    out = setup.status("--textfile")  # the configured monitoring.prometheus_textfile
    assert out.returncode == 2  # m2 has no snapshot
    found = samples(setup.tmp / "resticm.prom")
    assert found[("resticm_snapshots", labels("m1"))] == 1.0
    assert found[("resticm_snapshots", labels("m2"))] == 0.0
    assert ("resticm_snapshot_age_seconds", labels("m2")) not in found
    assert found[("resticm_snapshot_age_seconds", labels("m1"))] >= 1.0
    run_labels = frozenset({"host": HOST, "command": "backup"}.items())
    assert found[("resticm_run_success", run_labels)] == 1.0  # the run's series are kept
    other = setup.tmp / "other.prom"
    assert setup.status("--textfile", str(other), "-b", "m1").returncode == 0
    assert ("resticm_snapshots", labels("m1")) in samples(other)


def test_textfile_without_a_path_or_config_is_a_usage_error(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"repository": str(tmp_path / "r"), "password_file": "/dev/null"}))
    out = cli("-c", str(cfg), "status", "--textfile", env=environ)
    assert out.returncode == 2 and "monitoring.prometheus_textfile is not set" in out.stderr
    bad = cli("-c", str(cfg), "status", "--max-age", "soon", env=environ)
    assert bad.returncode == 2 and "argument --max-age" in bad.stderr
    assert "Traceback" not in out.stderr + bad.stderr


def test_unknown_backend_is_a_usage_error(tmp_path: Path, environ: dict[str, str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"repository": str(tmp_path / "r"), "password_file": "/dev/null"}))
    out = cli("-c", str(cfg), "status", "-b", "nope", env=environ)
    assert out.returncode == 2 and "nope" in out.stderr and "Traceback" not in out.stderr


def test_ranking_and_ages() -> None:
    assert worst([Health.OK, Health.WARNING, Health.UNKNOWN]) is Health.UNKNOWN
    assert worst([Health.UNKNOWN, Health.CRITICAL]) is Health.CRITICAL
    assert worst([]) is Health.OK
    assert [human_age(s) for s in (0, 95, 3600, 93784, 86400)] == [
        "0s", "1m35s", "1h", "1d2h", "1d"
    ]


# -- the dashboard and the alert rules ---------------------------------------------------------

#: PromQL words that are not metric names.
_PROMQL_WORDS = {
    "time", "max", "min", "sum", "avg", "count", "by", "without", "on", "ignoring", "and", "or",
    "unless", "bool", "max_over_time", "min_over_time", "changes", "increase", "rate", "absent",
    "label_replace", "group_left", "group_right", "topk", "bottomk", "offset", "clamp_min",
    "host", "repository", "command", "step", "le", "inf", "nan", "vector", "scalar", "sort",
}
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (label matchers, strings and durations dropped)."""
    text = re.sub(r'"[^"]*"', "", expr)  # strings: label values, label_replace arguments
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges [5m]
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)
    names = {m for m in _IDENT.findall(text) if m.lower() not in _PROMQL_WORDS}
    return {n for n in names if not re.fullmatch(r"\d+[smhdwy]?", n)}


@pytest.fixture(scope="module")
def written_metrics(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> set[str]:
    """Metric names of the textfile of a real backup + check run (the series resticm writes)."""
    base = tmp_path_factory.mktemp("metrics")
    repo = base / "repo"
    shutil.copytree(template_repo, repo)
    src = base / "src"
    src.mkdir()
    (src / "f.txt").write_text("data\n")
    cfg = base / "c.yaml"
    cfg.write_text(
        json.dumps(
            {
                "repository": str(repo),
                "password": PASSWORD,
                "directories": [str(src)],
                "host": HOST,
                "logging": {"file": "", "console": False},
                "monitoring": {"prometheus_textfile": str(base / "r.prom")},
            }
        )
    )
    cfg.chmod(0o600)
    env = {
        **{k: v for k, v in restic_env(base / "cache").items() if not k.startswith("RESTIC_P")},
        "RESTICM_STATE_DIR": str(base / "state"),
        "HOME": str(base / "home"),
    }
    env.pop("RESTIC_REPOSITORY", None)
    for command in ("backup", "check", "forget"):
        out = cli("-c", str(cfg), command, env=env)
        assert out.returncode == 0, out.stderr
    return {name for name, _ in samples(base / "r.prom")}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        found = re.search(r"label_values\((\w+)", query or "")
        if found:
            exprs.append(found.group(1))
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    from ruamel.yaml import YAML

    document = YAML(typ="safe").load((EXAMPLES / "resticm-alerts.yml").read_text())
    assert isinstance(document, dict) and isinstance(document["groups"], list)
    rules = []
    for group in document["groups"]:
        assert isinstance(group["name"], str) and group["rules"]
        rules += group["rules"]
    return rules


@requires_restic
def test_the_dashboard_reads_only_metrics_resticm_writes(written_metrics: set[str]) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 6
    used = set().union(*(metric_names(e) for e in exprs))
    assert used and used <= written_metrics, used - written_metrics
    for wanted in (
        "resticm_snapshot_latest_timestamp_seconds",
        "resticm_run_success",
        "resticm_run_duration_seconds",
        "resticm_backup_added_bytes",
        "resticm_snapshots",
    ):
        assert wanted in used


@requires_restic
def test_the_alert_rules_read_only_metrics_resticm_writes(written_metrics: set[str]) -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {"ResticmBackupTooOld", "ResticmRunFailed", "ResticmCheckFailed"} <= names
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        used = metric_names(rule["expr"])
        assert used and used <= written_metrics, (rule["alert"], used - written_metrics)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_alert_rules() -> None:
    out = subprocess.run(
        ["promtool", "check", "rules", str(EXAMPLES / "resticm-alerts.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_snapshot_times_and_the_newest_of_a_list() -> None:
    from resticm_core.snapshot_count import snapshot_time, survey

    # restic writes nanoseconds and the local offset; Python takes 6 digits.
    assert snapshot_time("2024-05-01T02:00:00.123456789+02:00") == pytest.approx(
        1714521600.123456
    )
    assert snapshot_time("2024-05-01T00:00:00Z") == 1714521600.0
    assert snapshot_time("yesterday") is None and snapshot_time(None) is None
    found = survey(
        [
            {"id": "b", "time": "2024-05-02T00:00:00Z"},
            {"id": "a", "time": "2024-05-01T00:00:00Z"},
        ]
    )
    assert found.count == 2 and found.newest == {"id": "b", "time": "2024-05-02T00:00:00Z"}


def test_size_from_a_restic_017_summary() -> None:
    from resticm_core.snapshot_count import SnapshotSurvey
    from resticm_core.status import StatusReport, evaluate, render

    newest = {"id": "x" * 64, "short_id": "xxxxxxxx", "summary": {"total_bytes_processed": 2048}}
    row = evaluate(
        "primary", "/r", SnapshotSurvey(count=1, newest=newest, newest_time=100.0), "",
        host="h", now=160.0, max_age=None, warn_age=None, status={}, deep_check=None,
    )
    assert row.state is Health.OK and row.size == 2048 and row.age == 60.0
    table = render(StatusReport(host="h", time=160.0, repositories=(row,)))
    assert "2.0 KiB" in table and "1m" in table
