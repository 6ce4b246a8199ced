#!/bin/sh
# on_success: runs once at the end of a run in which nothing failed.
#
# BACKUP_STATUS is success, partial (restic exit 3, resticm exits 3) or skipped
# (a pre_backup hook exited 75). restic's summary figures are in RESTICM_* variables.
set -eu

work=$(dirname "${RESTICM_CONFIG:?is not set: run hooks through resticm, e.g. resticm -c CONFIG hooks run on_success}")
log() {
    echo "$(date '+%Y-%m-%d %H:%M:%S') $(basename "$0"): $*" | tee -a "$work/hooks.log"
}

case ${BACKUP_STATUS:-} in
    skipped)
        log "no backup this time: a pre_backup hook asked to skip it (exit 75)" ;;
    *)
        log "backup ${BACKUP_STATUS:-?} on ${RESTICM_HOST:-?}: snapshot ${RESTICM_SNAPSHOT_ID:-?}," \
            "${RESTICM_FILES_NEW:-0} new and ${RESTICM_FILES_CHANGED:-0} changed files," \
            "${RESTICM_DATA_ADDED:-0} bytes added in ${RESTICM_BACKUP_DURATION:-?}s" ;;
esac
exit 0
