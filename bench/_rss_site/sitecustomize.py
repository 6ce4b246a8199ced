"""Loaded by the benchmark only (PYTHONPATH=bench/_rss_site) into the resticm process.

At exit it writes two peak resident set sizes, in KiB, to $RESTICM_BENCH_RSS_FILE:
the Python process itself (RUSAGE_SELF) and its largest waited-for child
(RUSAGE_CHILDREN: the restic process, or the hook). wait4() on the resticm process
only gives the larger of the two, so this is how they are told apart.
"""

import atexit
import os
import resource

_TARGET = os.environ.get("RESTICM_BENCH_RSS_FILE")


def _write() -> None:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(_TARGET, "w") as handle:  # type: ignore[arg-type]
        handle.write(f"{own} {children}\n")


if _TARGET:
    atexit.register(_write)
