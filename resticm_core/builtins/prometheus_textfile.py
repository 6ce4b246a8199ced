"""Observer: the Prometheus textfile (node_exporter textfile collector).

    monitoring:
      prometheus_textfile: /var/lib/node_exporter/textfile/resticm.prom

After every run (not dry runs), the run's metrics are merged into the file and
it is written atomically. Metrics and labels: docs/notifications.md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from resticm_core.hookspecs import hookimpl
from resticm_core.monitoring import update_textfile

if TYPE_CHECKING:
    from resticm_core.config import Config
    from resticm_core.phases import RunReport

log = logging.getLogger("resticm_core.monitoring")


@hookimpl
def resticm_run_finished(report: RunReport, config: Config) -> None:
    target = config.monitoring.prometheus_textfile
    if not target or report.dry_run:
        return
    path = Path(os.path.expanduser(target))
    if not path.is_absolute():
        path = config.config_dir / path
    update_textfile(path, report, {"host": report.host})
    log.debug("metrics written to %s", path)
