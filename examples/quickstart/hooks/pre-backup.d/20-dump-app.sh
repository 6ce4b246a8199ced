#!/bin/sh
# pre_backup module 20: "dump the database" of the sample app into $work/dumps.
#
# The app keeps its tables as CSV files in $work/data/app/db; the dump turns them
# into SQL, as mariadb-dump or pg_dump would, so that the backup holds one
# consistent file. The dump directory is one of the backed-up directories.
#
# To see the failure path, make the dump fail:
#     QUICKSTART_FAIL_DUMP=1 examples/quickstart/run.sh
# resticm then skips the backup and post_backup, runs on_error and finally,
# and exits 1.
set -eu

work=$(dirname "${RESTICM_CONFIG:?is not set: run hooks through resticm, e.g. resticm -c CONFIG hooks run pre_backup}")
log() {
    echo "$(date '+%Y-%m-%d %H:%M:%S') $(basename "$0"): $*" | tee -a "$work/hooks.log"
}

app="$work/data/app"
dumps="$work/dumps"

if [ "${QUICKSTART_FAIL_DUMP:-0}" = 1 ]; then
    log "ERROR: database dump failed (QUICKSTART_FAIL_DUMP=1)" >&2
    exit 1
fi

mkdir -p "$dumps"
tmp="$dumps/.app-db.sql.tmp"
trap 'rm -f "$tmp"' EXIT            # never leave half a dump behind

{
    echo "-- quickstart app: database dump of $app/db, $(date '+%Y-%m-%d %H:%M:%S')"
    for table in "$app"/db/*.csv; do
        name=$(basename "$table" .csv)
        echo "-- table $name"
        # Skip the CSV header, quote every value: a,b -> 'a','b'
        sed -e 1d -e "s/'/''/g" -e "s/,/','/g" -e "s/^/INSERT INTO $name VALUES ('/" \
            -e "s/\$/');/" "$table"
    done
} > "$tmp"

# Never trust a dump without checking it (the hooks guide, best practice 2).
if ! grep -q '^INSERT INTO' "$tmp"; then
    log "ERROR: the dump has no rows"
    exit 1
fi
mv "$tmp" "$dumps/app-db.sql"
log "dumped $(grep -c '^INSERT INTO' "$dumps/app-db.sql") rows to $dumps/app-db.sql"
exit 0
