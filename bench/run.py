"""What resticm_core costs over raw restic, measured as ratios (issues 8 and 19).

    python bench/run.py            # full: 1 GB tree, ~10-20 minutes on 2 cores
    python bench/run.py --quick    # ~100 MB tree, under 2 minutes
    python bench/run.py --only startup,hooks
    python bench/run.py --only preflight,flood,status,copy

Every figure is the median of several runs taken alternately with its baseline
(A B A B ...), after one discarded warm-up run of each, so drift in machine
load hits both sides alike. Prints a table and writes bench/results.json.
Uses the standard library and the project only; runrestic (the peer figure) is
looked for in a separate venv (``--runrestic``), never in the project's.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RSS_SITE = BENCH_DIR / "_rss_site"
# The interpreter this benchmark runs under, as the venv names it (not its realpath:
# the console script's shebang names the venv's python, and a symlinked venv's
# realpath has no resticm next to it). It is also the baseline of the start-up
# figures: `python -c pass` is this very binary.
PYTHON = sys.executable
# The console script pip installed next to it, called directly: a pyenv/asdf shim
# in front of it would add a shell script's start-up to every resticm figure.
RESTICM = str(Path(PYTHON).parent / "resticm")
RESTIC = shutil.which("restic") or "restic"
TIME_BIN = shutil.which("time", path="/usr/bin:/bin")  # GNU time (apt-get install time)
HOST = "bench"  # fixed --host: resticm and raw restic then pick the same parent snapshot
MiB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    tree_bytes: int
    small_files: int
    first_reps: int
    incr_reps: int
    startup_reps: int
    hook_reps: int
    flood_bytes: int
    flood_reps: int
    copy_reps: int
    chatty_bytes: int = 300 * 1000 * 1000  # issue 19: 300 MB in 100-byte lines (3 M lines)
    chatty_reps: int = 3
    preflight_reps: int = 11
    status_reps: int = 9


FULL = Sizes(1024 * MiB, 20_000, 3, 7, 21, 7, 500 * MiB, 1, 2)
QUICK = Sizes(100 * MiB, 2_000, 2, 4, 11, 3, 50 * MiB, 1, 2, 30 * 1000 * 1000, 2, 7, 5)


# -- measuring one process ----------------------------------------------------------------------


@dataclass
class Sample:
    wall: float  # seconds
    rss_kib: int  # peak RSS of the process tree (wait4: the largest process in it)
    rc: int
    python_kib: int | None = None  # resticm's own Python process (sitecustomize)
    child_kib: int | None = None  # its largest child (restic, a hook)
    restic_s: float | None = None  # resticm --json: the restic step's own duration
    #: user + system CPU seconds of the whole process tree (wait4): far steadier than
    #: the wall time on a shared, loaded machine, where waiting for a core dominates.
    cpu: float = 0.0


def measure(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    split_rss: bool = False,
    check: bool = True,
    rss: bool = True,
    report: bool = False,
) -> Sample:
    """Run *argv* to completion: wall time, and peak RSS of its process tree.

    The peak RSS comes from GNU time (``%M``) when installed, else from our own
    wait4. Linux starts a forked child's peak RSS at its parent's size (the
    copied mm is counted before exec), so wait4 from this (large) benchmark
    process would report at least our own RSS; GNU time is a small parent.
    """
    env = dict(env)
    rss_file = None
    time_file = None
    if TIME_BIN and rss:
        fd, time_file = tempfile.mkstemp(prefix="time-")
        os.close(fd)
        argv = [TIME_BIN, "-f", "%M", "-o", time_file, *argv]
    if split_rss:
        fd, rss_file = tempfile.mkstemp(prefix="rss-")
        os.close(fd)
        env["PYTHONPATH"] = str(RSS_SITE)
        env["RESTICM_BENCH_RSS_FILE"] = rss_file
    start = time.perf_counter()
    out = tempfile.TemporaryFile() if report else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.PIPE)
    # stderr is drained in a thread (a flood must not block the child) and only
    # its tail is kept for error messages.
    tail: list[bytes] = []

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail.append(line)
            del tail[:-20]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    sample = Sample(
        wall=wall,
        rss_kib=usage.ru_maxrss,
        rc=proc.returncode,
        cpu=usage.ru_utime + usage.ru_stime,
    )
    if time_file is not None:
        lines = Path(time_file).read_text().split()
        os.unlink(time_file)
        if lines and lines[-1].isdigit():
            sample.rss_kib = int(lines[-1])
    if rss_file is not None:
        text = Path(rss_file).read_text().split()
        os.unlink(rss_file)
        if len(text) == 2:
            sample.python_kib, sample.child_kib = int(text[0]), int(text[1])
    if report and not isinstance(out, int):
        out.seek(0)
        with contextlib.suppress(ValueError, KeyError, IndexError):
            steps = json.loads(out.read())["steps"]
            sample.restic_s = sum(step["duration"] for step in steps)
        out.close()
    if check and proc.returncode != 0:
        message = b"".join(tail).decode(errors="replace")
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{message}")
    return sample


def alternate(
    runners: dict[str, Callable[[], Sample]], reps: int, *, warmup: bool = True
) -> dict[str, list[Sample]]:
    """Run each runner in turn, *reps* rounds (A B A B ...); the first round is a warm-up."""
    samples: dict[str, list[Sample]] = {name: [] for name in runners}
    for round_no in range(reps + (1 if warmup else 0)):
        for name, run in runners.items():
            sample = run()
            if round_no > 0 or not warmup:
                samples[name].append(sample)
    return samples


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], object]) -> Sample:
    """An in-process figure (the library's DirectoryHook): wall time only."""
    start = time.perf_counter()
    fn()
    return Sample(wall=time.perf_counter() - start, rss_kib=0, rc=0)


# -- results ------------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    ours: str
    baseline: str
    ours_value: float
    baseline_value: float
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""
    #: The 1-minute load average when the figure was taken (shared machines).
    load: float = field(default_factory=lambda: os.getloadavg()[0])

    @property
    def ratio(self) -> float:
        return self.ours_value / self.baseline_value if self.baseline_value else float("nan")


@dataclass
class Results:
    mode: str
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        verdict = "" if row.met is None else (" OK" if row.met else " MISSED")
        print(
            f"  {row.figure}: {row.ours_value:.4g} vs {row.baseline_value:.4g} {row.unit}"
            f" = {row.ratio:.3f}x{verdict} (load {row.load:.1f})",
            flush=True,
        )


def cpu_row(
    res: Results, figure: str, samples: dict[str, list[Sample]], ours: str, base: str,
    *, scale: float = 1000.0, unit: str = "ms CPU",
) -> Row:
    """The same comparison in CPU time of the process trees (see :attr:`Sample.cpu`)."""
    row = Row(
        f"{figure} (CPU time)",
        ours,
        base,
        med([s.cpu for s in samples[ours]]) * scale,
        med([s.cpu for s in samples[base]]) * scale,
        unit,
        note="user+system of the process tree; the wall figure above waits for cores too",
    )
    res.add(row)
    return row


def raw_samples(samples: dict[str, list[Sample]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [asdict(s) for s in values] for name, values in samples.items()}


# -- the test tree ------------------------------------------------------------------------------


def make_tree(root: Path, sizes: Sizes, seed: int = 8) -> int:
    """Deterministic mixed tree: many small files (half text, half random) + large random ones."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(500)]
    total = 0
    for i in range(sizes.small_files):
        directory = root / "small" / f"d{i // 200:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        size = rng.randint(256, 16 * 1024)
        text = b" ".join(rng.choices(words, k=size // 8))[:size]
        data = rng.randbytes(size) if i % 2 else text
        (directory / f"f{i:05d}.dat").write_bytes(data)
        total += len(data)
    large = root / "large"
    large.mkdir(parents=True, exist_ok=True)
    chunk = 64 * MiB
    index = 0
    while total < sizes.tree_bytes:
        size = min(chunk, sizes.tree_bytes - total)
        with (large / f"blob{index:02d}.bin").open("wb") as out:
            # Written in 1 MiB pieces: this process stays small (see measure()).
            for offset in range(0, size, MiB):
                out.write(rng.randbytes(min(MiB, size - offset)))
        total += size
        index += 1
    return total


# -- the environment ----------------------------------------------------------------------------


class Workspace:
    """Temp directory, password file, restic environment, resticm config files."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.password_file = base / "password"
        self.password_file.write_text("bench-password\n")
        self.password_file.chmod(0o600)
        self.cache = base / "restic-cache"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RESTIC_", "RESTICM_", "PYTHON")) and k != "AWS_SECRET_ACCESS_KEY"
        }
        env["RESTIC_CACHE_DIR"] = str(self.cache)
        env["LC_ALL"] = "C"
        self.env = env
        self._counter = 0

    def path(self, stem: str) -> Path:
        self._counter += 1
        return self.base / f"{stem}-{self._counter}"

    def restic_env(self, repo: Path) -> dict[str, str]:
        return {
            **self.env,
            "RESTIC_REPOSITORY": str(repo),
            "RESTIC_PASSWORD_FILE": str(self.password_file),
        }

    def init_repo(self, stem: str = "repo") -> Path:
        repo = self.path(stem)
        measure([RESTIC, "init"], env=self.restic_env(repo))
        return repo

    def config(self, data: dict[str, Any]) -> Path:
        """A resticm config file (YAML is a superset of JSON), mode 0600 as resticm demands."""
        path = self.path("config").with_suffix(".yaml")
        base = {"password_file": str(self.password_file), "host": HOST, "logging": {"file": ""}}
        path.write_text(json.dumps({**base, **data}, indent=2))
        path.chmod(0o600)
        return path


# -- 1. backup ----------------------------------------------------------------------------------


def backup_argv(ws: Workspace, src: Path) -> list[str]:
    from resticm_core.restic import backup_args

    return [RESTIC, *backup_args([str(src)], host=HOST)]


def check_same_command(ws: Workspace, cfg: Path, raw: Sequence[str]) -> str:
    """resticm -v prints the restic command it runs: it must be the baseline's."""
    out = subprocess.run(
        [RESTICM, "-v", "-c", str(cfg), "--dry-run", "backup"],
        env=ws.env,
        capture_output=True,
        text=True,
        check=False,
    )
    wanted = " ".join(raw[1:])
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "restic" in line]
    if not any(wanted in line for line in lines):
        raise RuntimeError(f"resticm runs another command than {wanted!r}:\n" + "\n".join(lines))
    return next(line for line in lines if wanted in line).strip()


def bench_backup(
    ws: Workspace, sizes: Sizes, res: Results, src: Path, runrestic: str | None
) -> None:
    raw = backup_argv(ws, src)
    print(f"1. backup: {' '.join(raw)}", flush=True)

    def resticm_run(repo: Path) -> Callable[[], Sample]:
        cfg = ws.config({"repository": str(repo), "directories": [str(src)]})
        argv = [RESTICM, "--json", "-c", str(cfg), "backup"]
        return lambda: measure(argv, env=ws.env, split_rss=True, report=True)

    def restic_run(repo: Path) -> Callable[[], Sample]:
        return lambda: measure(raw, env=ws.restic_env(repo))

    probe_repo = ws.init_repo()
    probe_cfg = ws.config({"repository": str(probe_repo), "directories": [str(src)]})
    res.raw["backup_command"] = check_same_command(ws, probe_cfg, raw)

    # First run: a fresh repository for every run (init not timed).
    first: dict[str, list[Sample]] = {"resticm": [], "restic": []}
    for _ in range(sizes.first_reps):
        for name, make in (("resticm", resticm_run), ("restic", restic_run)):
            repo = ws.init_repo()
            first[name].append(make(repo)())
            shutil.rmtree(repo)  # 1 GiB each: keep the disk (and the final cleanup) small
    report_backup(res, "first backup", first)

    # Incremental: one repository that already holds the tree; nothing changed.
    repo = ws.init_repo()
    measure(raw, env=ws.restic_env(repo))
    runners = {"resticm": resticm_run(repo), "restic": restic_run(repo)}
    rr_cfg = None
    if runrestic:
        rr_cfg = runrestic_config(ws, repo, src)
        runners["runrestic"] = lambda: measure([runrestic, "-c", str(rr_cfg), "backup"], env=ws.env)
    incr = alternate(runners, sizes.incr_reps)
    report_backup(res, "incremental backup", incr)
    if "runrestic" in incr:
        restic_wall = med([s.wall for s in incr["restic"]])
        res.add(
            Row(
                "incremental backup, peer: wall time",
                "runrestic backup",
                "restic backup",
                med([s.wall for s in incr["runrestic"]]),
                restic_wall,
                "s",
                note="runrestic 0.5.31, its own venv; restic without --json",
            )
        )
        res.add(
            Row(
                "incremental backup, peer: peak RSS (tree)",
                "runrestic backup",
                "restic backup",
                med([s.rss_kib for s in incr["runrestic"]]) / 1024,
                med([s.rss_kib for s in incr["restic"]]) / 1024,
                "MiB",
            )
        )
    res.raw["backup"] = {"first": raw_samples(first), "incremental": raw_samples(incr)}


def report_backup(res: Results, label: str, samples: dict[str, list[Sample]]) -> None:
    ours, base = samples["resticm"], samples["restic"]
    incremental = label.startswith("incremental")
    wall = Row(
        f"{label}: wall time",
        "resticm backup",
        "restic backup",
        med([s.wall for s in ours]),
        med([s.wall for s in base]),
        "s",
        target="<= 1.05x" if incremental else "",
    )
    res.add(wall)
    outside = [s.wall - s.restic_s for s in ours if s.restic_s is not None]
    if outside:
        # restic's own run time varies by more than our overhead on a busy machine;
        # the time resticm spends outside its restic child does not.
        overhead = Row(
            f"{label}: wall time, restic + resticm's own time",
            "restic wall + resticm outside restic",
            "restic backup",
            med([s.wall for s in base]) + med(outside),
            med([s.wall for s in base]),
            "s",
            target="<= 1.05x" if incremental else "",
            note=f"resticm outside its restic child: median {med(outside) * 1000:.0f} ms",
        )
        if incremental:
            overhead.met = overhead.ratio <= 1.05
        res.add(overhead)
    if incremental:
        wall.met = wall.ratio <= 1.05
    res.add(
        Row(
            f"{label}: peak RSS (process tree)",
            "resticm backup",
            "restic backup",
            med([s.rss_kib for s in ours]) / 1024,
            med([s.rss_kib for s in base]) / 1024,
            "MiB",
            note="wait4: the largest process of the tree",
        )
    )
    python = [s.python_kib for s in ours if s.python_kib]
    child = [s.child_kib for s in ours if s.child_kib]
    if python and child:
        res.add(
            Row(
                f"{label}: peak RSS, resticm's Python process / its restic child",
                "python",
                "restic child",
                med(python) / 1024,
                med(child) / 1024,
                "MiB",
                note="RUSAGE_SELF / RUSAGE_CHILDREN in the resticm process",
            )
        )


def runrestic_config(ws: Workspace, repo: Path, src: Path) -> Path:
    path = ws.path("runrestic").with_suffix(".toml")
    path.write_text(
        "name = 'bench'\n"
        f"repositories = ['{repo}']\n"
        "[environment]\n"
        f"RESTIC_PASSWORD_FILE = '{ws.password_file}'\n"
        f"RESTIC_CACHE_DIR = '{ws.cache}'\n"
        "[backup]\n"
        f"sources = ['{src}']\n"
        "[prune]\n"
        "keep-last = 1000\n"
    )
    path.chmod(0o600)
    return path


# -- 2. startup ---------------------------------------------------------------------------------

HEAVY = ("attrs", "attr", "cattrs", "ruamel", "pluggy")


def heavy_imports_of_version(env: dict[str, str]) -> list[str]:
    """Modules of HEAVY imported by `resticm --version` (python -X importtime)."""
    out = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "resticm_core", "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    names = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line]
    return sorted({n for n in names if n.split(".")[0] in HEAVY})


def bench_startup(ws: Workspace, sizes: Sizes, res: Results) -> None:
    print("2. startup", flush=True)
    tree = ws.path("validate-src")
    tree.mkdir()
    cfg = ws.config(
        {
            "repository": str(ws.base / "unused-repo"),
            "directories": [str(tree)],
            "hooks": {"pre_backup": ["/bin/true"]},
            "retention": {"keep_daily": 7},
        }
    )
    commands = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "resticm --version": [RESTICM, "--version"],
        "python -m resticm_core --version": [PYTHON, "-m", "resticm_core", "--version"],
        "python -c 'import resticm_core'": [PYTHON, "-c", "import resticm_core"],
        "resticm -c CFG config validate": [RESTICM, "-c", str(cfg), "config", "validate"],
    }
    runners: dict[str, Callable[[], Sample]] = {
        name: functools.partial(measure, argv, env=ws.env, rss=False)
        for name, argv in commands.items()
    }
    samples = alternate(runners, sizes.startup_reps)
    base = med([s.wall for s in samples["python -c pass"]]) * 1000
    for name in list(commands)[1:]:
        row = Row(
            f"startup: {name}",
            name,
            "python -c pass",
            med([s.wall for s in samples[name]]) * 1000,
            base,
            "ms",
            target={"resticm --version": "<= 1.5x",
                    "resticm -c CFG config validate": "<= 60 ms"}.get(name, ""),
        )
        if name == "resticm --version":
            row.met = row.ratio <= 1.5
        elif row.target:
            row.met = row.ours_value <= 60
        res.add(row)
    for name in ("resticm --version", "resticm -c CFG config validate"):
        cpu_row(res, f"startup: {name}", samples, name, "python -c pass")
    heavy = heavy_imports_of_version(ws.env)
    res.raw["startup"] = raw_samples(samples)
    res.raw["version_heavy_imports"] = heavy
    res.notes.append(
        "`resticm --version` imports "
        + (", ".join(heavy) if heavy else "none of attrs, cattrs, ruamel.yaml, pluggy")
        + " (python -X importtime)."
    )
    print(f"  heavy imports of --version: {heavy or 'none'}", flush=True)


# -- 3. directory executor ----------------------------------------------------------------------


class NullSink:
    """Hook output goes nowhere (run-parts' output goes to /dev/null too)."""

    def hook_line(self, hook: str, line: str) -> None:
        pass

    def message(self, level: int, text: str) -> None:
        pass


def noop_directory(ws: Workspace, count: int = 100) -> Path:
    directory = ws.path("pre-backup.d")
    directory.mkdir(mode=0o700)
    for i in range(count):
        # No dots in the names: run-parts skips them by default.
        script = directory / f"{i:03d}-noop"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o700)
    return directory


def bench_hooks(ws: Workspace, sizes: Sizes, res: Results) -> None:
    print("3. directory executor, 100 no-op scripts", flush=True)
    from resticm_core.builtins.directory import DirectoryHook
    from resticm_core.hooks import HookContext
    from resticm_core.phases import Outcome, Phase

    directory = noop_directory(ws)
    repo = ws.base / "unused-repo"  # `hooks run` never touches the repository
    cfg = ws.config({"repository": str(repo), "hooks": {"pre_backup": f"{directory}/"}})
    hook = DirectoryHook(path=str(directory))
    ctx = HookContext(
        phase=Phase.PRE_BACKUP,
        command="bench",
        env={"PATH": ws.env.get("PATH", os.defpath), "LC_ALL": "C"},
        config_dir=ws.base,
        output=NullSink(),
    )

    def library() -> None:
        results = hook.run(ctx)
        if len(results) != 100 or any(r.outcome is not Outcome.OK for r in results):
            raise RuntimeError(f"DirectoryHook ran {len(results)} modules: {results[:3]}")

    runners = {
        "resticm hooks run pre_backup": lambda: measure(
            [RESTICM, "-c", str(cfg), "hooks", "run", "pre_backup"], env=ws.env, rss=False
        ),
        "DirectoryHook.run (in process)": lambda: timed(library),
        "run-parts": lambda: measure(["run-parts", str(directory)], env=ws.env, rss=False),
    }
    if not shutil.which("run-parts"):
        res.notes.append("run-parts is not installed (Debian's debianutils): figure 3 skipped.")
        return
    samples = alternate(runners, sizes.hook_reps)
    base = med([s.wall for s in samples["run-parts"]]) * 1000
    for name in ("resticm hooks run pre_backup", "DirectoryHook.run (in process)"):
        row = Row(
            f"100 no-op hooks: {name}",
            name,
            "run-parts",
            med([s.wall for s in samples[name]]) * 1000,
            base,
            "ms",
            target="<= 1.5x",
        )
        row.met = row.ratio <= 1.5
        res.add(row)
    cpu_row(res, "100 no-op hooks: resticm hooks run", samples, "resticm hooks run pre_backup",
            "run-parts")
    res.raw["hooks"] = raw_samples(samples)


# -- 4. a hook printing a flood -----------------------------------------------------------------


def flood_script(ws: Workspace, size: int, newlines: bool) -> Path:
    script = ws.path("flood")
    if newlines:  # 100-byte lines
        body = f"yes \"$(printf '%099d' 0)\" | head -c {size}\n"
    else:  # one line without a newline
        body = f"head -c {size} /dev/zero | tr '\\0' x\n"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o700)
    return script


def bench_flood(ws: Workspace, sizes: Sizes, res: Results) -> None:
    size = sizes.flood_bytes
    print(f"4. a hook printing {size // MiB} MiB", flush=True)
    repo = ws.base / "unused-repo"
    for label, newlines in (("100-byte lines", True), ("no newline", False)):
        big = ws.config(
            {
                "repository": str(repo),
                "hooks": {"pre_backup": str(flood_script(ws, size, newlines))},
            }
        )
        tiny = ws.config(
            {"repository": str(repo), "hooks": {"pre_backup": str(flood_script(ws, 100, newlines))}}
        )

        def run(cfg: Path) -> Callable[[], Sample]:
            return lambda: measure(
                [RESTICM, "-c", str(cfg), "hooks", "run", "pre_backup"], env=ws.env, split_rss=True
            )

        samples = alternate({"flood": run(big), "tiny": run(tiny)}, sizes.flood_reps, warmup=False)
        flood_rss = med([s.python_kib or 0 for s in samples["flood"]]) / 1024
        tiny_rss = med([s.python_kib or 0 for s in samples["tiny"]]) / 1024
        row = Row(
            f"hook printing {size // MiB} MiB ({label}): resticm peak RSS",
            "resticm (Python process)",
            "hook output size",
            flood_rss,
            size / MiB,
            "MiB",
            target="< 60 MiB",
            note=f"same hook printing 100 bytes: {tiny_rss:.1f} MiB; "
            f"took {med([s.wall for s in samples['flood']]):.1f} s",
        )
        row.met = flood_rss < 60
        res.add(row)
        res.raw[f"flood_{'lines' if newlines else 'oneline'}"] = raw_samples(samples)


# -- 5. copy to three backends ------------------------------------------------------------------


def bench_copy(ws: Workspace, sizes: Sizes, res: Results, src: Path, quick: bool) -> None:
    """3 fresh copy targets per run (initialised untimed), copied from one source."""
    print("5. copy to 3 backends", flush=True)
    import attrs

    from resticm_core.config import Config
    from resticm_core.config_file import config_from_dict
    from resticm_core.restic import Restic, SubprocessResticRunner

    source = ws.init_repo("copy-source")
    # Quick mode copies the small files only (~16 MiB): the copy figure is about
    # running three restic processes at once, not about bandwidth.
    measure(backup_argv(ws, src / "small" if quick else src), env=ws.restic_env(source))
    names = ("b1", "b2", "b3")
    default: int = attrs.fields(Config).copy_concurrency.default or 2
    restic = Restic(SubprocessResticRunner(environ=ws.env))

    def prepared(concurrency: int) -> dict[str, Any]:
        data: dict[str, Any] = {
            "repository": str(source),
            "directories": [str(src)],
            "backends": {name: {"repository": str(ws.path(f"copy-{name}"))} for name in names},
            "copy_to_backends": list(names),
            "copy_concurrency": concurrency,
        }
        for backend in data["backends"].values():
            backend["password_file"] = str(ws.password_file)
        config = config_from_dict({**data, "password_file": str(ws.password_file)}, environ=ws.env)
        primary = config.primary_repository()

        def init(name: str) -> None:
            result = restic.init(config.repository_named(name), copy_chunker_params_from=primary)
            if not result.ok:
                raise RuntimeError(result.message)

        # Not timed: copy targets are initialised once in real life.
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            list(pool.map(init, names))
        return data

    def drop_targets(data: dict[str, Any]) -> None:
        for backend in data["backends"].values():
            shutil.rmtree(backend["repository"], ignore_errors=True)

    def via_cli(concurrency: int) -> Callable[[], Sample]:
        def run() -> Sample:
            data = prepared(concurrency)
            sample = measure([RESTICM, "-c", str(ws.config(data)), "copy"], env=ws.env, rss=False)
            drop_targets(data)
            return sample

        return run

    def via_facade(concurrency: int) -> Callable[[], Sample]:
        def run() -> Sample:
            data = prepared(concurrency)
            config = config_from_dict(
                {**data, "password_file": str(ws.password_file)}, environ=ws.env
            )
            primary = config.primary_repository()
            targets = [config.repository_named(n) for n in names]

            def one(target: Any) -> None:
                result = restic.copy(target, primary, host=HOST)
                if not result.ok:
                    raise RuntimeError(result.message)

            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                list(pool.map(one, targets))
            sample = Sample(wall=time.perf_counter() - start, rss_kib=0, rc=0)
            drop_targets(data)
            return sample

        return run

    # The CLI when this resticm has `resticm copy` (copy_to_backends, copy_concurrency);
    # a CLI copy that then fails stops the benchmark with its error.
    probe = subprocess.run([RESTICM, "copy", "--help"], env=ws.env, capture_output=True)
    if probe.returncode == 0:
        make, how = via_cli, "`resticm -c CFG copy` (the CLI), copy_concurrency in the config"
    else:
        make, how = via_facade, "`Restic.copy` in a thread pool (this resticm has no copy command)"
    # Every concurrency from 1 to the number of backends: the default is chosen from these.
    runners = {"sequential": make(1)}
    for concurrency in range(2, len(names) + 1):
        runners[f"parallel ({concurrency})"] = make(concurrency)
    samples = alternate(runners, sizes.copy_reps, warmup=False)
    base = med([s.wall for s in samples["sequential"]])
    for name in runners:
        if name == "sequential":
            continue
        row = Row(
            f"copy to 3 backends: {name}",
            name,
            "sequential",
            med([s.wall for s in samples[name]]),
            base,
            "s",
            target="<= 0.6x" if name == f"parallel ({default})" else "",
            note=how.split(" (")[0] + (" (the default)" if name == f"parallel ({default})" else ""),
        )
        if row.target:
            row.met = row.ratio <= 0.6
        res.add(row)
    res.raw["copy"] = raw_samples(samples)
    res.notes.append(
        f"Copy measured through {how}; default copy_concurrency = {default}; "
        "each run copies into 3 freshly initialised repositories."
    )


# -- 7. the preflight probe: a backup with one no-op hook ----------------------------------------


def bench_preflight(ws: Workspace, sizes: Sizes, res: Results) -> None:
    """A tiny unchanged tree backed up: without hooks, with one no-op pre_backup hook (the
    preflight runs), and the same with no preflight record (restic's probe, as before)."""
    print("7. preflight: incremental backup of a tiny tree, with and without a hook", flush=True)
    src = ws.path("tiny")
    (src / "d").mkdir(parents=True)
    for i in range(20):
        (src / "d" / f"f{i}").write_text(f"file {i}\n" * 50)
    repo = ws.init_repo()
    raw = backup_argv(ws, src)
    measure(raw, env=ws.restic_env(repo))  # the parent snapshot: every run below is unchanged
    noop = ws.path("noop")
    noop.write_text("#!/bin/sh\nexit 0\n")
    noop.chmod(0o700)
    plain = ws.config({"repository": str(repo), "directories": [str(src)]})
    hooked = ws.config(
        {"repository": str(repo), "directories": [str(src)], "hooks": {"pre_backup": [str(noop)]}}
    )
    state = ws.path("state")
    env_record = {**ws.env, "RESTICM_STATE_DIR": str(state)}

    def no_record() -> Sample:
        # A state directory of its own every run: no record, restic is asked (the old way).
        fresh = ws.path("state")
        sample = measure([RESTICM, "-c", str(hooked), "backup"], env={
            **ws.env, "RESTICM_STATE_DIR": str(fresh)}, rss=False)
        shutil.rmtree(fresh, ignore_errors=True)
        return sample

    runners: dict[str, Callable[[], Sample]] = {
        "restic backup": lambda: measure(raw, env=ws.restic_env(repo), rss=False),
        "no hooks": lambda: measure(
            [RESTICM, "-c", str(plain), "backup"], env=env_record, rss=False
        ),
        "one no-op hook": lambda: measure(
            [RESTICM, "-c", str(hooked), "backup"], env=env_record, rss=False
        ),
        "one no-op hook, restic probe": no_record,
    }
    samples = alternate(runners, sizes.preflight_reps)
    wall = {name: med([s.wall for s in values]) for name, values in samples.items()}
    row = Row(
        "backup, one no-op pre_backup hook (preflight answered by the record)",
        "one no-op hook",
        "no hooks",
        wall["one no-op hook"],
        wall["no hooks"],
        "s",
        target="<= 1.05x",
    )
    row.met = row.ratio <= 1.05
    res.add(row)
    res.add(
        Row(
            "backup, one no-op pre_backup hook, no record (restic's probe, as before)",
            "one no-op hook, restic probe",
            "no hooks",
            wall["one no-op hook, restic probe"],
            wall["no hooks"],
            "s",
        )
    )
    cpu_row(res, "backup, one no-op hook / no hooks", samples, "one no-op hook", "no hooks")
    cpu_row(res, "backup, one no-op hook, restic probe / no hooks", samples,
            "one no-op hook, restic probe", "no hooks")
    cpu_row(res, "unchanged tiny tree: resticm / restic", samples, "no hooks", "restic backup")
    over = wall["no hooks"] - wall["restic backup"]
    row = Row(
        "unchanged tiny tree: resticm backup over the same restic backup",
        "resticm -c CFG backup",
        "restic backup",
        wall["no hooks"],
        wall["restic backup"],
        "s",
        target="<= +50 ms",
        note=f"resticm adds {over * 1000:.0f} ms",
    )
    row.met = over <= 0.050
    res.add(row)
    res.raw["preflight"] = raw_samples(samples)


# -- 8. a chatty hook: 3 M lines, time --------------------------------------------------------


def bench_chatty(ws: Workspace, sizes: Sizes, res: Results) -> None:
    size = sizes.chatty_bytes
    lines = size // 100
    print(f"8. a hook printing {size / 1e6:.0f} MB ({lines:,} lines): time", flush=True)
    script = ws.path("chatty")
    script.write_text("#!/bin/sh\n" + f"yes \"$(printf '%099d' 0)\" | head -n {lines}\n")
    script.chmod(0o700)
    cfg = ws.config(
        {
            "repository": str(ws.base / "unused-repo"),
            "hooks": {"pre_backup": str(script)},
            "logging": {"file": str(ws.path("chatty-log"))},
        }
    )
    # Both sides print into a `cat` that writes to /dev/null: resticm's console (stderr)
    # like the hook's own stdout; neither pays this process's reading.
    hook_alone = ["sh", "-c", f"{script} | cat >/dev/null"]
    through = ["sh", "-c", f"{RESTICM} -c {cfg} hooks run pre_backup 2>&1 | cat >/dev/null"]
    samples = alternate(
        {
            "resticm hooks run": lambda: measure(through, env=ws.env, rss=False),
            "hook | cat": lambda: measure(hook_alone, env=ws.env, rss=False),
        },
        sizes.chatty_reps,
        warmup=False,
    )
    row = Row(
        f"hook printing {size / 1e6:.0f} MB in 100-byte lines: wall time",
        "resticm hooks run pre_backup",
        "the hook alone | cat",
        med([s.wall for s in samples["resticm hooks run"]]),
        med([s.wall for s in samples["hook | cat"]]),
        "s",
        target="<= 3x",
        note="console: every line, through a cat to /dev/null; log file: head and tail",
    )
    row.met = row.ratio <= 3
    res.add(row)
    cpu_row(res, "hook printing 3 M lines", samples, "resticm hooks run", "hook | cat",
            scale=1.0, unit="s CPU")
    res.raw["chatty"] = raw_samples(samples)


# -- 9. status of three local repositories -------------------------------------------------------


def bench_status(ws: Workspace, sizes: Sizes, res: Results) -> None:
    print("9. status: three local repositories", flush=True)
    src = ws.path("status-src")
    src.mkdir()
    (src / "a").write_text("a\n")
    repos = [ws.init_repo("status") for _ in range(3)]
    for repo in repos:
        measure(backup_argv(ws, src), env=ws.restic_env(repo))
    cfg = ws.config(
        {
            "repository": str(repos[0]),
            "directories": [str(src)],
            "backends": {
                f"b{i}": {"repository": str(repo), "password_file": str(ws.password_file)}
                for i, repo in enumerate(repos[1:], 1)
            },
            "copy_to_backends": ["b1", "b2"],
        }
    )
    raw = " & ".join(
        f"RESTIC_REPOSITORY={repo} {RESTIC} snapshots --latest 1 --json --host {HOST} >/dev/null"
        for repo in repos
    )
    env = {**ws.env, "RESTIC_PASSWORD_FILE": str(ws.password_file)}
    samples = alternate(
        {
            "resticm status": lambda: measure(
                [RESTICM, "-c", str(cfg), "status"], env=ws.env, rss=False
            ),
            "3 x restic snapshots, in parallel": lambda: measure(
                ["sh", "-c", raw + " & wait"], env=env, rss=False
            ),
        },
        sizes.status_reps,
    )
    row = Row(
        "status of three local repositories",
        "resticm -c CFG status",
        "3 raw restic snapshots --latest 1 --json at once",
        med([s.wall for s in samples["resticm status"]]),
        med([s.wall for s in samples["3 x restic snapshots, in parallel"]]),
        "s",
        target="<= 1.2x",
    )
    row.met = row.ratio <= 1.2
    res.add(row)
    cpu_row(res, "status of three local repositories", samples, "resticm status",
            "3 x restic snapshots, in parallel")
    res.raw["status"] = raw_samples(samples)


# -- main ---------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{kib / 1024 / 1024:.1f} GiB"
    restic = subprocess.run([RESTIC, "version"], capture_output=True, text=True, check=False)
    return {
        "nproc": str(os.cpu_count()),
        "ram": ram,
        "cpu": cpu,
        "os": platform.platform(),
        "restic": restic.stdout.strip(),
        "python": platform.python_version(),
        "python_executable": PYTHON,
        "resticm": RESTICM,
        "python_realpath": os.path.realpath(PYTHON),
        # The Workspace environment drops every PYTHON* variable: with
        # PYTHONDONTWRITEBYTECODE=1 an editable install recompiles the package on every
        # start (+~50 ms); the figures are those of an ordinary install.
        "pythondontwritebytecode": "unset for the measured commands (was "
        + (os.environ.get("PYTHONDONTWRITEBYTECODE") or "unset") + ")",
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "host": socket.gethostname(),
    }


def find_runrestic(given: str | None) -> tuple[str | None, str]:
    candidate = given or "/tmp/rr-venv/bin/runrestic"
    if not os.access(candidate, os.X_OK):
        return None, (
            f"runrestic not found at {candidate}: create it with "
            "`python -m venv /tmp/rr-venv && /tmp/rr-venv/bin/pip install runrestic`"
        )
    out = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None, f"runrestic at {candidate} does not start: {out.stderr.strip()[-300:]}"
    return candidate, f"runrestic {out.stdout.strip() or out.stderr.strip()}"


def print_table(res: Results) -> None:
    print()
    print(f"{'figure':<66} {'ours':>10} {'baseline':>10} {'ratio':>7} {'load':>5}  target")
    for row in res.rows:
        verdict = "" if row.met is None else ("met" if row.met else "MISSED")
        print(
            f"{row.figure[:66]:<66} {row.ours_value:>10.4g} {row.baseline_value:>10.4g} "
            f"{row.ratio:>6.3f}x {row.load:>5.1f}  {row.target} {verdict}"
        )
    for note in res.notes:
        print(f"note: {note}")


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Workspace]:
    base = Path(tempfile.mkdtemp(prefix="resticm-bench-"))
    try:
        yield Workspace(base)
    finally:
        if keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


ALL = ("startup", "preflight", "hooks", "chatty", "flood", "status", "backup", "copy")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~100 MB tree, fewer runs (< 2 min)")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma list of {','.join(ALL)}")
    parser.add_argument(
        "--runrestic", help="runrestic executable (default /tmp/rr-venv/bin/runrestic)"
    )
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results.json")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = parser.parse_args(argv)
    only = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = set(only) - set(ALL)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    if not os.access(RESTICM, os.X_OK):
        parser.error(f"{RESTICM} not found: install the project (pip install -e .)")
    sizes = QUICK if args.quick else FULL
    res = Results(mode="quick" if args.quick else "full", machine=machine())
    started = time.monotonic()
    print(f"mode {res.mode}; " + "; ".join(f"{k}: {v}" for k, v in res.machine.items()))
    with workspace(args.keep) as ws:
        if "startup" in only:
            bench_startup(ws, sizes, res)
        if "hooks" in only:
            bench_hooks(ws, sizes, res)
        if "preflight" in only:
            bench_preflight(ws, sizes, res)
        if "chatty" in only:
            bench_chatty(ws, sizes, res)
        if "flood" in only:
            bench_flood(ws, sizes, res)
        if "status" in only:
            bench_status(ws, sizes, res)
        if "backup" in only or "copy" in only:
            src = ws.base / "tree"
            t0 = time.monotonic()
            total = make_tree(src, sizes)
            res.raw["tree"] = {"bytes": total, "small_files": sizes.small_files}
            print(
                f"tree: {total / MiB:.0f} MiB, {sizes.small_files} small files "
                f"({time.monotonic() - t0:.0f} s to write)",
                flush=True,
            )
            if "backup" in only:
                runrestic, why = find_runrestic(args.runrestic)
                res.notes.append(why)
                bench_backup(ws, sizes, res, src, runrestic)
            if "copy" in only:
                bench_copy(ws, sizes, res, src, quick=args.quick)
    res.raw["duration_s"] = round(time.monotonic() - started, 1)
    res.machine["loadavg_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print_table(res)
    print(f"total {res.raw['duration_s']} s; results in {args.output}")
    payload = {
        "mode": res.mode,
        "machine": res.machine,
        "rows": [{**asdict(r), "ratio": r.ratio} for r in res.rows],
        "notes": res.notes,
        "raw": res.raw,
    }
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
