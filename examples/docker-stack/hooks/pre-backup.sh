#!/bin/bash
# pre_backup (after docker-stop): dump PostgreSQL from the stopped stack,
# export the resolved compose config and the list of the stack's volumes.
set -euo pipefail   # pipefail: a failing pg_dumpall must not be hidden by gzip

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"
: "${COMPOSE_FILE:?set COMPOSE_FILE in hooks.environment}"
POSTGRES_SERVICE=${POSTGRES_SERVICE:-postgres}
PROJECT=$(basename "$(dirname "$COMPOSE_FILE")")

mkdir -p "$BACKUP_DIR"
trap 'rm -f "$BACKUP_DIR"/*.partial' EXIT
echo "Preparing Docker stack backup ($COMPOSE_FILE)..."

# 1. Dump PostgreSQL in a one-off container of the (stopped) service
echo "Dumping PostgreSQL..."
docker compose -f "$COMPOSE_FILE" run --rm --no-deps "$POSTGRES_SERVICE" \
    pg_dumpall -U postgres | gzip > "$BACKUP_DIR/postgres.sql.gz.partial"
if ! zcat "$BACKUP_DIR/postgres.sql.gz.partial" | tail -n 3 | grep -q "dump complete"; then
    echo "ERROR: the PostgreSQL dump is incomplete" >&2
    exit 1
fi
mv "$BACKUP_DIR/postgres.sql.gz.partial" "$BACKUP_DIR/postgres.sql.gz"

# 2. Export the resolved configuration
docker compose -f "$COMPOSE_FILE" config > "$BACKUP_DIR/docker-compose-resolved.yml"

# 3. List the stack's volumes (none is not an error)
docker volume ls --format '{{.Name}}' > "$BACKUP_DIR/volumes-all.partial"
grep "^${PROJECT}_" "$BACKUP_DIR/volumes-all.partial" > "$BACKUP_DIR/volumes-list.txt" || true

echo "Docker stack prepared for backup"
