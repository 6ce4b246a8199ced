#!/bin/sh
# post_backup: resume the app, and clean up the dumps after a successful backup.
#
# post_backup runs right after the backup step, whenever the backup ran, with
# BACKUP_STATUS=success or failure (and BACKUP_ERROR saying why). A partial
# backup (restic exit 3: the snapshot was written, some files were unreadable)
# is "success" here, with RESTICM_BACKUP_PARTIAL=1.
#
# It does NOT run when pre_backup failed or asked for a soft skip: finally.sh
# resumes the app on those paths.
set -eu

work=$(dirname "${RESTICM_CONFIG:?is not set: run hooks through resticm, e.g. resticm -c CONFIG hooks run post_backup}")
log() {
    echo "$(date '+%Y-%m-%d %H:%M:%S') $(basename "$0"): $*" | tee -a "$work/hooks.log"
}

# 1. Resume the app as soon as the backup is over, whatever its outcome: the
#    default workflow and `resticm full` go on with forget/prune/check, and the
#    app need not wait for them.
state="$work/app.paused"
if [ -e "$state" ]; then
    rm -f "$state"                                         # systemctl start myapp
    echo "$(date '+%Y-%m-%d %H:%M:%S') started" >> "$work/service.log"
    log "app resumed"
fi

# 2. Remove the dumps only once they are safely in a snapshot.
if [ "${BACKUP_STATUS:-}" = success ]; then
    rm -f "$work/dumps"/*.sql
    log "backup done (snapshot ${RESTICM_SNAPSHOT_ID:-?}${RESTICM_BACKUP_PARTIAL:+, partial}): dumps removed"
else
    log "backup failed (${BACKUP_ERROR:-no details}): keeping the dumps in $work/dumps for investigation"
fi
exit 0
