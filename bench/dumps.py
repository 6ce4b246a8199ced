"""Streamed PostgreSQL dumps vs the hooks guide's dump-to-file pattern (issue 7).

    python bench/dumps.py                  # a ~1 GB database, 3 alternating rounds (~15 min)
    python bench/dumps.py --size-mb 100    # quick look

Needs PostgreSQL on 127.0.0.1 with the test user (scripts/start-databases.sh).
Compared, in alternating rounds (A B A B ...), each into its own fresh repository:

- **streamed**: ``resticm backup`` with a ``dumps:`` entry (resticm-dumps installed
  into a private --target directory): ``pg_dump | restic backup --stdin``;
- **guide**: what the hooks guide's pre_backup hook does: ``pg_dump > dump.sql``,
  ``gzip dump.sql``, ``restic backup dump.sql.gz``, then delete the file.

For each: wall time (first backup, then a second one after a change: 1% new rows
appended and 0.1% updated in one range, an append-mostly table's night), peak
scratch disk (sampled every 20 ms: bytes under the scratch directory, where the
guide writes its dump and where resticm's TMPDIR points) and what each backup added
to the repository (growth of ``restic stats --mode raw-data``: gzip output defeats
restic's deduplication, plain SQL does not). Writes
bench/dumps-results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PLUGIN = ROOT / "plugins" / "resticm-dumps"
PYTHON = sys.executable
USER = "resticm_test"
PASSWORD = "resticm-test-password"
REPO_PASSWORD = "bench"
DATABASE = "resticm_bench_dump"
MiB = 1024 * 1024


def pg_env() -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": PASSWORD}


def psql(database: str, sql: str) -> str:
    argv = ["psql", "-X", "-h", "127.0.0.1", "-U", USER, "-d", database, "-Atq", "-v",
            "ON_ERROR_STOP=1", "-c", sql]  # fmt: skip
    return subprocess.run(argv, env=pg_env(), capture_output=True, text=True, check=True).stdout


def seed(size_mb: int) -> int:
    """A database whose plain dump is about *size_mb*: varied rows, not one repeated value."""
    psql("postgres", f"DROP DATABASE IF EXISTS {DATABASE}")
    psql("postgres", f"CREATE DATABASE {DATABASE}")
    rows = size_mb * MiB // 110  # ~110 bytes per row in the plain dump
    psql(
        DATABASE,
        "CREATE TABLE events (id bigint PRIMARY KEY, account int, kind text, amount numeric(12,2),"
        " at timestamptz, note text)",
    )
    step = 500_000
    for start in range(1, rows + 1, step):
        end = min(rows, start + step - 1)
        psql(
            DATABASE,
            "INSERT INTO events SELECT i, (i::bigint * 7919) % 100000, "
            "(ARRAY['login','purchase','refund','logout','view'])[1 + i % 5], "
            "((i::bigint * 31) % 100000) / 100.0, "
            "timestamptz '2026-01-01' + i * interval '1 second', "
            "md5(i::text) || ' ' || md5((i::bigint * 3)::text) "
            f"FROM generate_series({start}, {end}) i",
        )
    return int(psql(DATABASE, f"SELECT pg_database_size('{DATABASE}')").strip())


def change_one_percent() -> None:
    """A night of an append-mostly table: 1% new rows at the end, 0.1% updated in one range."""
    rows = int(psql(DATABASE, "SELECT max(id) FROM events").strip())
    new = max(1, rows // 100)
    psql(
        DATABASE,
        "INSERT INTO events SELECT i, (i::bigint * 7919) % 100000, 'login', 1.0, now(), "
        f"md5(i::text) FROM generate_series({rows + 1}, {rows + new}) i",
    )
    first = rows // 2
    psql(
        DATABASE,
        "UPDATE events SET amount = amount + 1 "
        f"WHERE id BETWEEN {first} AND {first + rows // 1000}",
    )


def install_plugin(base: Path) -> Path:
    target = base / "site"
    argv = [PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
            "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
            str(PLUGIN)]  # fmt: skip
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}
    subprocess.run(argv, check=True, env=env)
    return target


class ScratchWatcher:
    """Samples the bytes under a directory every 20 ms; keeps the peak."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _size(self) -> int:
        total = 0
        for root, _, files in os.walk(self.path):
            for name in files:
                with contextlib.suppress(OSError):  # removed while we walk
                    total += os.lstat(os.path.join(root, name)).st_size
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._size())
            self._stop.wait(0.02)

    def __enter__(self) -> ScratchWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._size())


def restic_env(repo: Path, cache: Path) -> dict[str, str]:
    return {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": REPO_PASSWORD,
            "RESTIC_CACHE_DIR": str(cache)}  # fmt: skip


def init_repo(repo: Path, cache: Path) -> None:
    shutil.rmtree(repo, ignore_errors=True)
    subprocess.run(["restic", "init", "-q"], env=restic_env(repo, cache), check=True)


def last_data_added(repo: Path, cache: Path) -> int:
    """data_added of the newest snapshot's backup is not stored: use repository growth."""
    out = subprocess.run(
        ["restic", "stats", "--mode", "raw-data", "--json"],
        env=restic_env(repo, cache),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(json.loads(out)["total_size"])


def streamed(ws: Path, site: Path, repo: Path) -> None:
    config = ws / "config.yaml"
    config.write_text(
        f"repository: {repo}\npassword: {REPO_PASSWORD}\nhost: bench\n"
        f"logging:\n  file: {ws / 'resticm.log'}\n  console: false\n"
        f"dumps:\n  - type: postgresql\n    host: 127.0.0.1\n    username: {USER}\n"
        f"    password_env: BENCH_PG_PASSWORD\n    databases: [{DATABASE}]\n"
    )
    config.chmod(0o600)
    env = {**os.environ, "PYTHONPATH": str(site), "BENCH_PG_PASSWORD": PASSWORD,
           "TMPDIR": str(ws / "scratch"), "RESTIC_CACHE_DIR": str(ws / "cache")}  # fmt: skip
    subprocess.run(
        [PYTHON, "-m", "resticm_core", "-c", str(config), "backup"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def guide(ws: Path, repo: Path) -> None:
    """The hooks guide's pattern, as its pre_backup/post_backup hooks run it."""
    scratch = ws / "scratch"
    dump = scratch / f"{DATABASE}.sql"
    with dump.open("wb") as out:
        argv = ["pg_dump", "-h", "127.0.0.1", "-U", USER, "--no-password", DATABASE]
        subprocess.run(argv, env=pg_env(), stdout=out, check=True)
    subprocess.run(["gzip", "-f", str(dump)], check=True)
    subprocess.run(
        ["restic", "backup", "-q", "--host", "bench", str(dump) + ".gz"],
        env=restic_env(repo, ws / "cache"),
        check=True,
    )
    Path(str(dump) + ".gz").unlink()


def measure(name: str, ws: Path, repo: Path, action: Callable[[], None]) -> dict[str, float]:
    scratch = ws / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    before = last_data_added(repo, ws / "cache")
    with ScratchWatcher(scratch) as watcher:
        started = time.perf_counter()
        action()
        wall = time.perf_counter() - started
    added = last_data_added(repo, ws / "cache") - before
    return {"wall_s": wall, "peak_scratch_bytes": watcher.peak, "repo_added_bytes": added}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="plain dump size to aim at")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="resticm-bench-dumps-") as tmp:
        base = Path(tmp)
        print(f"seeding a ~{args.size_mb} MB database...", flush=True)
        db_bytes = seed(args.size_mb)
        dump_bytes = len(
            subprocess.run(
                ["pg_dump", "-h", "127.0.0.1", "-U", USER, "--no-password", DATABASE],
                env=pg_env(), capture_output=True, check=True,
            ).stdout
        )  # fmt: skip
        site = install_plugin(base)
        samples: dict[str, dict[str, list[dict[str, float]]]] = {
            "streamed": {"first": [], "second": []},
            "guide": {"first": [], "second": []},
        }
        for round_no in range(args.rounds):
            for name in ("streamed", "guide") if round_no % 2 == 0 else ("guide", "streamed"):
                ws = base / name
                ws.mkdir(exist_ok=True)
                repo = ws / "repo"
                init_repo(repo, ws / "cache")

                def action(n: str = name, w: Path = ws, r: Path = repo) -> None:
                    streamed(w, site, r) if n == "streamed" else guide(w, r)

                samples[name]["first"].append(measure(name, ws, repo, action))
                change_one_percent()
                samples[name]["second"].append(measure(name, ws, repo, action))
                print(f"round {round_no + 1} {name}: {samples[name]}", flush=True)
        psql("postgres", f"DROP DATABASE IF EXISTS {DATABASE}")
    result = summarise(samples, db_bytes, dump_bytes)
    (BENCH_DIR / "dumps-results.json").write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    return 0


def summarise(
    samples: dict[str, dict[str, list[dict[str, float]]]], db_bytes: int, dump_bytes: int
) -> dict[str, Any]:
    def med(name: str, run: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name][run])

    figures: dict[str, Any] = {}
    for run in ("first", "second"):
        figures[run] = {
            name: {key: med(name, run, key) for key in samples[name][run][0]} for name in samples
        }
        figures[run]["wall_ratio_streamed_vs_guide"] = (
            figures[run]["streamed"]["wall_s"] / figures[run]["guide"]["wall_s"]
        )
    return {
        "machine": {
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "restic": subprocess.run(
                ["restic", "version"], capture_output=True, text=True
            ).stdout.strip(),
            "pg_dump": subprocess.run(
                ["pg_dump", "--version"], capture_output=True, text=True
            ).stdout.strip(),
        },
        "database_bytes": db_bytes,
        "plain_dump_bytes": dump_bytes,
        "figures": figures,
        "raw": samples,
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\ndatabase {result['database_bytes'] / MiB:.0f} MiB, "
        f"plain dump {result['plain_dump_bytes'] / MiB:.0f} MiB"
    )
    print(f"{'':28} {'streamed':>12} {'guide':>12} {'ratio':>8}")
    for run in ("first", "second"):
        fig = result["figures"][run]
        s, g = fig["streamed"], fig["guide"]
        print(f"{run + ' backup, wall s':28} {s['wall_s']:12.1f} {g['wall_s']:12.1f} "
              f"{s['wall_s'] / g['wall_s']:8.2f}")  # fmt: skip
        print(f"{run + ' peak scratch MiB':28} {s['peak_scratch_bytes'] / MiB:12.1f} "
              f"{g['peak_scratch_bytes'] / MiB:12.1f}")  # fmt: skip
        print(f"{run + ' repo added MiB':28} {s['repo_added_bytes'] / MiB:12.1f} "
              f"{g['repo_added_bytes'] / MiB:12.1f}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
