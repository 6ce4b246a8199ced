#!/bin/bash
# pre_backup module: dump every MariaDB database, gzipped, and check the dump.
set -euo pipefail   # pipefail: a failing mariadb-dump must not be hidden by gzip

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"
RETENTION_DAYS=${RETENTION_DAYS:-3}
DUMP="$BACKUP_DIR/mariadb-$(date +%Y%m%d-%H%M%S).sql.gz"

echo "Dumping MariaDB databases to $DUMP"
mkdir -p "$BACKUP_DIR"
# Written under a temporary name: a failed dump never looks like a good one.
trap 'rm -f "$DUMP.partial"' EXIT
mariadb-dump \
    --all-databases \
    --single-transaction \
    --quick \
    --lock-tables=false \
    --events \
    --routines \
    --triggers \
    | gzip > "$DUMP.partial"

# A gzip of nothing is not an empty file: check the dump's own end marker.
if ! zcat "$DUMP.partial" | tail -n 1 | grep -q "Dump completed"; then
    echo "ERROR: the MariaDB dump is incomplete (no 'Dump completed' line)" >&2
    exit 1
fi
mv "$DUMP.partial" "$DUMP"

find "$BACKUP_DIR" -name "mariadb-*.sql.gz" -mtime +"$RETENTION_DAYS" -delete
echo "MariaDB dump completed: $(stat -c %s "$DUMP") bytes"
