#!/bin/bash
# pre_backup module: dump the whole PostgreSQL cluster, gzipped, and check the dump.
set -euo pipefail   # pipefail: a failing pg_dumpall must not be hidden by gzip

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"
RETENTION_DAYS=${RETENTION_DAYS:-3}
DUMP="$BACKUP_DIR/postgres-$(date +%Y%m%d-%H%M%S).sql.gz"

echo "Dumping PostgreSQL to $DUMP"
mkdir -p "$BACKUP_DIR"
trap 'rm -f "$DUMP.partial"' EXIT
sudo -u postgres pg_dumpall | gzip > "$DUMP.partial"

if ! zcat "$DUMP.partial" | tail -n 3 | grep -q "dump complete"; then
    echo "ERROR: the PostgreSQL dump is incomplete (no 'dump complete' line)" >&2
    exit 1
fi
mv "$DUMP.partial" "$DUMP"

find "$BACKUP_DIR" -name "postgres-*.sql.gz" -mtime +"$RETENTION_DAYS" -delete
echo "PostgreSQL dump completed: $(stat -c %s "$DUMP") bytes"
