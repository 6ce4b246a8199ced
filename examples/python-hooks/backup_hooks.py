"""The orchestrator example's modules as Python hook functions.

Each function takes a :class:`resticm_core.HookContext`; raising (or returning
False) fails the hook, exactly like a script exiting non-zero. Settings come
from ``hooks.environment`` through ``ctx.env``; commands run through
``ctx.run_command`` (own process group, output streamed with the hook's name,
the hook's timeout) or, for dumps that must go through gzip, through
:func:`dump_gzipped`, which checks the dump's exit status: the Python form of
``set -o pipefail``.

Keep this module free of side effects at import time: resticm imports it on
every command (``config validate`` and dry runs included) to check the names.
"""

from __future__ import annotations

import gzip
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from resticm_core import HookContext


def _setting(ctx: HookContext, name: str) -> str:
    value = ctx.env.get(name, "")
    if not value:
        raise RuntimeError(f"set {name} in hooks.environment")
    return value


def dump_gzipped(ctx: HookContext, argv: list[str], target: Path, marker: bytes) -> None:
    """Run *argv*, gzip its output into *target*; fail unless it exits 0 and ends with *marker*.

    Written as ``target.partial`` and renamed when complete: a failed dump never
    looks like a good one.
    """
    partial = target.with_name(target.name + ".partial")
    name = argv[0] if argv[0] != "sudo" else argv[-1]
    try:
        with tempfile.TemporaryFile() as errors, gzip.open(partial, "wb") as out:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=dict(ctx.env),
                stdin=subprocess.DEVNULL,
            )
            stdout = proc.stdout
            assert stdout is not None
            tail = b""
            for chunk in iter(lambda: stdout.read(1 << 16), b""):
                out.write(chunk)
                tail = (tail + chunk)[-4096:]
            status = proc.wait()
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip().splitlines()
        for line in said:
            ctx.output.hook_line(name, line)
        if status != 0:
            last = f": {said[-1]}" if said else ""
            raise RuntimeError(f"{name} exited with status {status}{last}")
        if marker not in tail:
            raise RuntimeError(f"the {name} dump is incomplete (no {marker.decode()!r} line)")
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)
    ctx.output.hook_line(name, f"dump completed: {target} ({target.stat().st_size} bytes)")


def _dump_path(ctx: HookContext, engine: str) -> Path:
    directory = Path(_setting(ctx, "BACKUP_DIR"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{engine}-{datetime.now():%Y%m%d-%H%M%S}.sql.gz"


def dump_mariadb(ctx: HookContext) -> None:
    argv = [
        "mariadb-dump",
        "--all-databases",
        "--single-transaction",
        "--quick",
        "--lock-tables=false",
        "--events",
        "--routines",
        "--triggers",
    ]
    dump_gzipped(ctx, argv, _dump_path(ctx, "mariadb"), b"Dump completed")


def dump_postgres(ctx: HookContext) -> None:
    argv = ["sudo", "-u", "postgres", "pg_dumpall"]
    dump_gzipped(ctx, argv, _dump_path(ctx, "postgres"), b"dump complete")


def _stopped_file(ctx: HookContext) -> Path:
    return Path(_setting(ctx, "STOPPED_FILE"))


def _docker(ctx: HookContext, *args: str) -> bool:
    proc = ctx.run_command(["docker", *args], name="docker", timeout=None)
    return proc.ok


def stop_containers(ctx: HookContext) -> None:
    """Stop the running containers of CONTAINERS, recording each one as it stops."""
    record = _stopped_file(ctx)
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    listing = subprocess.run(
        ["docker", "ps", "--format", "{{.Names}}"],
        env=dict(ctx.env),
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        raise RuntimeError(f"docker ps failed: {listing.stderr.strip()}")
    running = set(listing.stdout.split())
    grace = ctx.env.get("STOP_GRACE", "30")
    for container in ctx.env.get("CONTAINERS", "").split():
        if container not in running:
            ctx.output.hook_line("stop_containers", f"{container} is not running, skipping")
            continue
        if not _docker(ctx, "stop", "--time", grace, container):
            # Those stopped so far are recorded: finally restarts them.
            raise RuntimeError(f"failed to stop container {container} - backup aborted")
        with record.open("a") as file:
            file.write(container + "\n")
        record.chmod(0o600)


def start_containers(ctx: HookContext) -> None:
    """Start what stop_containers recorded; nothing recorded, nothing to do."""
    record = _stopped_file(ctx)
    names = record.read_text().split() if record.exists() else []
    if not names:
        ctx.output.hook_line("start_containers", f"no containers to restart ({ctx.phase})")
        record.unlink(missing_ok=True)
        return
    failed = [name for name in names if not _docker(ctx, "start", name)]
    if failed:
        record.write_text("".join(f"{name}\n" for name in failed))  # finally retries
        raise RuntimeError(f"could not start: {', '.join(failed)}")
    record.unlink()


def cleanup_dumps(ctx: HookContext) -> None:
    """After a successful backup, delete dumps older than MAX_AGE_HOURS."""
    if ctx.env.get("BACKUP_STATUS") != "success":
        ctx.output.hook_line("cleanup_dumps", "backup failed, keeping the dumps")
        return
    limit = time.time() - float(ctx.env.get("MAX_AGE_HOURS", "2")) * 3600
    for dump in Path(_setting(ctx, "BACKUP_DIR")).glob("*.sql.gz"):
        if dump.stat().st_mtime < limit:
            dump.unlink()
            ctx.output.hook_line("cleanup_dumps", f"removed {dump}")


def alert(ctx: HookContext) -> None:
    """on_error: replace the message with your alerting (mail, chat, monitoring)."""
    ctx.output.hook_line(
        "alert",
        f"ALERT: backup on {ctx.env.get('RESTICM_HOST', '?')} failed "
        f"(backup: {ctx.env.get('BACKUP_STATUS', '?')})",
    )
    for line in ctx.env.get("ERROR", "").splitlines():
        ctx.output.hook_line("alert", f"  {line}")
