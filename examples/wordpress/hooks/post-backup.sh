#!/bin/bash
# post_backup: the site back online, then clean up once the backup succeeded.
set -euo pipefail

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"

"$(dirname "$0")/maintenance-off.sh"

if [ "${BACKUP_STATUS:-}" = success ]; then
    rm -f "$BACKUP_DIR"/*.sql.gz "$BACKUP_DIR"/*.json
    echo "WordPress backup completed successfully (snapshot ${RESTICM_SNAPSHOT_ID:-?})"
else
    echo "WordPress backup failed, files kept for debugging: ${BACKUP_ERROR:-?}"
fi
