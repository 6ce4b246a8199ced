#!/bin/bash
# pre_backup: dump each database engine that is active on this server.
# The dumps are verified by the verify-files entry that follows in config.yaml.
set -euo pipefail   # pipefail: a failing dump must not be hidden by gzip

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"
REDIS_RDB=${REDIS_RDB:-/var/lib/redis/dump.rdb}
RETENTION_DAYS=${RETENTION_DAYS:-3}
DATE=$(date +%Y%m%d-%H%M%S)

log() { echo "[$(date '+%Y-%m-%d %H:%M:%S')] $*"; }
active() { systemctl is-active --quiet "$1"; }

mkdir -p "$BACKUP_DIR"
trap 'rm -f "$BACKUP_DIR"/*.partial' EXIT
log "Starting multi-database backup"

if active mariadb; then
    log "Backing up MariaDB..."
    mariadb-dump --all-databases --single-transaction --events --routines --triggers \
        | gzip > "$BACKUP_DIR/mariadb-$DATE.sql.gz.partial"
    mv "$BACKUP_DIR/mariadb-$DATE.sql.gz.partial" "$BACKUP_DIR/mariadb-$DATE.sql.gz"
fi

if active postgresql; then
    log "Backing up PostgreSQL..."
    sudo -u postgres pg_dumpall | gzip > "$BACKUP_DIR/postgres-$DATE.sql.gz.partial"
    mv "$BACKUP_DIR/postgres-$DATE.sql.gz.partial" "$BACKUP_DIR/postgres-$DATE.sql.gz"
fi

if active mongod; then
    log "Backing up MongoDB..."
    mongodump --archive="$BACKUP_DIR/mongodb-$DATE.archive.partial" --gzip
    mv "$BACKUP_DIR/mongodb-$DATE.archive.partial" "$BACKUP_DIR/mongodb-$DATE.archive"
fi

if active redis; then
    log "Backing up Redis..."
    gzip -c "$REDIS_RDB" > "$BACKUP_DIR/redis-$DATE.rdb.gz.partial"
    mv "$BACKUP_DIR/redis-$DATE.rdb.gz.partial" "$BACKUP_DIR/redis-$DATE.rdb.gz"
fi

# Old dumps: keep RETENTION_DAYS days locally (the repository keeps the rest).
find "$BACKUP_DIR" -type f -mtime +"$RETENTION_DAYS" -print -delete
log "All database dumps written"
