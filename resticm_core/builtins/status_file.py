"""Observer: the JSON status file (last result per command and per repository step).

    monitoring:
      status_file: /var/lib/resticm/status.json

After every run (not dry runs) the file is loaded, patched and written atomically.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from resticm_core.hookspecs import hookimpl
from resticm_core.monitoring import update_status_file

if TYPE_CHECKING:
    from resticm_core.config import Config
    from resticm_core.phases import RunReport

log = logging.getLogger("resticm_core.monitoring")


@hookimpl
def resticm_run_finished(report: RunReport, config: Config) -> None:
    target = config.monitoring.status_file
    if not target or report.dry_run:
        return
    path = Path(os.path.expanduser(target))
    if not path.is_absolute():
        path = config.config_dir / path
    update_status_file(path, report)
    log.debug("status written to %s", path)
