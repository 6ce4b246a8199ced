#!/bin/bash
# pre_backup: detect what this server runs, and prepare exactly that.
set -euo pipefail   # pipefail: a failing dump must not be hidden by gzip

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"
: "${STOPPED_FILE:?set STOPPED_FILE in hooks.environment}"
STOP_LABEL=${STOP_LABEL:-backup-stop=true}
DATE=$(date +%Y%m%d)

log() { echo "[$(date '+%Y-%m-%d %H:%M:%S')] $*"; }

# Nothing to do on a standby node: skip this backup softly (no error, exit 0).
if [ -n "${STANDBY_FLAG:-}" ] && [ -e "$STANDBY_FLAG" ]; then
    log "standby node ($STANDBY_FLAG exists): skipping the backup"
    exit 75
fi

mkdir -p "$BACKUP_DIR"
trap 'rm -f "$BACKUP_DIR"/*.partial' EXIT
log "Starting intelligent pre-backup"

# dump NAME FILE COMMAND...: COMMAND's output, gzipped, into FILE, or fail.
dump() {
    local name=$1 file=$2
    shift 2
    log "Dumping $name..."
    "$@" | gzip > "$file.partial"
    mv "$file.partial" "$file"
    log "$name dump completed"
}

if systemctl is-active --quiet mariadb 2>/dev/null; then
    dump MariaDB "$BACKUP_DIR/mariadb-$DATE.sql.gz" mariadb-dump --all-databases --single-transaction
fi

if systemctl is-active --quiet postgresql 2>/dev/null; then
    dump PostgreSQL "$BACKUP_DIR/postgres-$DATE.sql.gz" sudo -u postgres pg_dumpall
fi

# Stop the running Docker containers labelled for backup, recording each one.
# (The guide's `docker ps | while read` ran the loop in a subshell and missed
# failures of the listing.)
if command -v docker >/dev/null; then
    log "Stopping Docker containers labelled $STOP_LABEL..."
    mkdir -p "$(dirname "$STOPPED_FILE")"
    touch "$STOPPED_FILE"
    chmod 600 "$STOPPED_FILE"
    mapfile -t labelled < <(docker ps --filter "label=$STOP_LABEL" --format '{{.Names}}')
    wait $! || { echo "ERROR: docker ps failed" >&2; exit 1; }
    for container in "${labelled[@]}"; do
        log "  Stopping $container..."
        docker stop --time 30 "$container" >/dev/null \
            || { echo "ERROR: failed to stop $container - backup aborted" >&2; exit 1; }
        echo "$container" >> "$STOPPED_FILE"
    done
    log "Stopped ${#labelled[@]} containers"
fi

if systemctl is-active --quiet mongod 2>/dev/null; then
    log "Dumping MongoDB..."
    mongodump --archive="$BACKUP_DIR/mongodb-$DATE.archive.partial" --gzip
    mv "$BACKUP_DIR/mongodb-$DATE.archive.partial" "$BACKUP_DIR/mongodb-$DATE.archive"
    log "MongoDB dump completed"
fi

log "Pre-backup completed successfully"
