#!/bin/bash
# post_backup (after docker-start): delete the exports once they are in a snapshot.
set -euo pipefail

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"
if [ "${BACKUP_STATUS:-}" = success ]; then
    rm -f "$BACKUP_DIR"/postgres.sql.gz "$BACKUP_DIR"/docker-compose-resolved.yml \
          "$BACKUP_DIR"/volumes-list.txt
    echo "Docker stack backup completed (snapshot ${RESTICM_SNAPSHOT_ID:-?})"
else
    echo "Backup failed, keeping dumps: ${BACKUP_ERROR:-?}"
fi
