#!/bin/sh
# pre_backup module 00: skip the backup, without an error, during a maintenance window.
#
# Exit 75 (EX_TEMPFAIL) is a *soft skip*: resticm runs neither the backup nor
# post_backup nor the modules after this one, reports no error, runs on_success
# with BACKUP_STATUS=skipped, then finally, and exits 0.
#
# The demo's "maintenance window" is the variable QUICKSTART_SKIP=1:
#     QUICKSTART_SKIP=1 examples/quickstart/run.sh
set -eu

if [ "${QUICKSTART_SKIP:-0}" = 1 ]; then
    work=$(dirname "${RESTICM_CONFIG:?is not set: run hooks through resticm, e.g. resticm -c CONFIG hooks run pre_backup}")
    echo "$(date '+%Y-%m-%d %H:%M:%S') $(basename "$0"): maintenance window (QUICKSTART_SKIP=1): skipping this backup" \
        | tee -a "$work/hooks.log"
    exit 75
fi
exit 0
