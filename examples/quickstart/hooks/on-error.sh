#!/bin/sh
# on_error: runs once at the end of a run in which something failed.
#
# ERROR lists every failed step, one per line. BACKUP_STATUS says what happened
# to the backup: not_run (pre_backup failed), failure, success or partial (the
# backup was fine, a later step failed). A real system would alert here.
set -eu

work=$(dirname "${RESTICM_CONFIG:?is not set: run hooks through resticm, e.g. resticm -c CONFIG hooks run on_error --error test}")
log() {
    echo "$(date '+%Y-%m-%d %H:%M:%S') $(basename "$0"): $*" | tee -a "$work/hooks.log"
}

printf '%s\n' "${ERROR:-}" > "$work/last-error.txt"
log "the run failed (BACKUP_STATUS=${BACKUP_STATUS:-?}); ERROR, also in $work/last-error.txt:"
printf '%s\n' "${ERROR:-}" | sed 's/^/    /'
# mail -s "backup failed on $(hostname)" root < "$work/last-error.txt"
exit 0
