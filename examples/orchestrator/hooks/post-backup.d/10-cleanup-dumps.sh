#!/bin/bash
# post_backup module: delete local dumps once they are safely in a snapshot.
set -euo pipefail

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"
MAX_AGE_HOURS=${MAX_AGE_HOURS:-2}

# A partial backup (restic exit 3) is "success" here too, with RESTICM_BACKUP_PARTIAL=1.
if [ "${BACKUP_STATUS:-}" = success ]; then
    find "$BACKUP_DIR" -name "*.sql.gz" -mmin +$((MAX_AGE_HOURS * 60)) -print -delete
    echo "Cleanup completed (dumps older than ${MAX_AGE_HOURS}h removed)"
else
    echo "Backup failed (${BACKUP_ERROR:-?}), keeping the dumps for investigation"
fi
