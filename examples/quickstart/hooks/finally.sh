#!/bin/sh
# finally: runs last, on every path — success, failure, soft skip, pre_backup
# failure, and after SIGTERM/SIGINT — after on_success or on_error.
#
# The safety net that resumes the app whatever happened. post-backup.sh resumes
# it on the normal path, but post_backup runs only when the backup ran: when
# pre_backup fails (10-pause-app.sh paused the app, then 20-dump-app.sh failed)
# or resticm is stopped before the backup, post_backup does not run, and without
# this hook the app would stay stopped. finally always runs (only --no-hooks
# disables it, and then nothing was paused either).
#
# A failure here is logged and leaves resticm's exit code unchanged.
set -eu

work=$(dirname "${RESTICM_CONFIG:?is not set: run hooks through resticm, e.g. resticm -c CONFIG hooks run finally}")
log() {
    echo "$(date '+%Y-%m-%d %H:%M:%S') $(basename "$0"): $*" | tee -a "$work/hooks.log"
}

state="$work/app.paused"
if [ -e "$state" ]; then
    rm -f "$state"                                         # systemctl start myapp
    echo "$(date '+%Y-%m-%d %H:%M:%S') started" >> "$work/service.log"
    log "app resumed by the safety net (BACKUP_STATUS=${BACKUP_STATUS:-?})"
else
    log "the app is running: nothing to resume (BACKUP_STATUS=${BACKUP_STATUS:-?})"
fi
exit 0
