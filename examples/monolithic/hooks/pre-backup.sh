#!/bin/bash
# pre_backup: every preparation in one script. Any failure stops it (set -e),
# fails pre_backup and skips the backup; finally restarts what was stopped.
set -euo pipefail   # pipefail: a failing dump must not be hidden by gzip

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"
: "${APP_DIR:?set APP_DIR in hooks.environment}"
: "${STOPPED_FILE:?set STOPPED_FILE in hooks.environment}"
read -r -a containers <<< "${CONTAINERS:-}"

log() { echo "[$(date '+%Y-%m-%d %H:%M:%S')] $*"; }
fail() { echo "ERROR: $*" >&2; exit 1; }

mkdir -p "$BACKUP_DIR" "$(dirname "$STOPPED_FILE")"
# Partial files are removed whatever happens; complete ones are renamed.
trap 'rm -f "$BACKUP_DIR"/*.partial' EXIT

log "Starting pre-backup operations"

# 1. Dump MariaDB
log "Dumping MariaDB..."
mariadb-dump --all-databases --single-transaction | gzip > "$BACKUP_DIR/mariadb.sql.gz.partial" \
    || fail "MariaDB dump failed"
mv "$BACKUP_DIR/mariadb.sql.gz.partial" "$BACKUP_DIR/mariadb.sql.gz"

# 2. Dump PostgreSQL
log "Dumping PostgreSQL..."
sudo -u postgres pg_dumpall | gzip > "$BACKUP_DIR/postgres.sql.gz.partial" \
    || fail "PostgreSQL dump failed"
mv "$BACKUP_DIR/postgres.sql.gz.partial" "$BACKUP_DIR/postgres.sql.gz"

# 3. Stop containers, recording each one as soon as it is stopped
log "Stopping containers..."
touch "$STOPPED_FILE"
chmod 600 "$STOPPED_FILE"
for container in "${containers[@]}"; do
    docker stop --time 30 "$container" >/dev/null \
        || fail "failed to stop container $container - backup aborted"
    echo "$container" >> "$STOPPED_FILE"
done

# 4. Create application snapshot (while the application is stopped)
log "Creating application snapshot..."
tar czf "$BACKUP_DIR/app-snapshot.tar.gz.partial" -C "$APP_DIR" . \
    || fail "application snapshot failed"
mv "$BACKUP_DIR/app-snapshot.tar.gz.partial" "$BACKUP_DIR/app-snapshot.tar.gz"

log "Pre-backup completed successfully"
