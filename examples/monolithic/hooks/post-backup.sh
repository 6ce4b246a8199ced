#!/bin/bash
# post_backup AND finally: start the containers pre-backup.sh stopped (nothing to
# do when none are recorded), then, in post_backup only, clean up the dumps once
# they are in a snapshot.
set -euo pipefail

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"
: "${STOPPED_FILE:?set STOPPED_FILE in hooks.environment}"

log() { echo "[$(date '+%Y-%m-%d %H:%M:%S')] $*"; }

log "Starting post-backup (${RESTICM_PHASE:-?}, backup: ${BACKUP_STATUS:-?})"

# 1. Start containers
if [ -s "$STOPPED_FILE" ]; then
    log "Starting containers..."
    mapfile -t stopped < "$STOPPED_FILE"
    if ! docker start "${stopped[@]}" >/dev/null; then
        echo "ERROR: failed to start: ${stopped[*]} (kept in $STOPPED_FILE)" >&2
        exit 1
    fi
fi
rm -f "$STOPPED_FILE"

# 2. Cleanup dumps (keep them if the backup failed)
if [ "${RESTICM_PHASE:-}" = post_backup ]; then
    if [ "${BACKUP_STATUS:-}" = success ]; then
        log "Cleaning up temporary files..."
        rm -f "$BACKUP_DIR"/*.sql.gz "$BACKUP_DIR"/app-snapshot.tar.gz
    else
        log "Backup failed, keeping dumps for investigation"
    fi
fi
log "Post-backup completed"
