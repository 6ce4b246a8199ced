#!/bin/bash
# pre_backup: maintenance mode on, dump the database, export settings and plugins.
set -euo pipefail   # pipefail: a failing mariadb-dump must not be hidden by gzip

: "${BACKUP_DIR:?set BACKUP_DIR in hooks.environment}"
: "${WP_PATH:?set WP_PATH in hooks.environment}"
: "${DB_NAME:?set DB_NAME in hooks.environment}"
WP_USER=${WP_USER:-www-data}

wp_cli() { sudo -u "$WP_USER" wp --path="$WP_PATH" "$@"; }

mkdir -p "$BACKUP_DIR"
trap 'rm -f "$BACKUP_DIR"/*.partial' EXIT
echo "Preparing WordPress backup..."

# 1. Maintenance mode: visitors see a notice, nothing writes to the database.
#    Failing to enable it is not fatal (the dump is --single-transaction).
wp_cli maintenance-mode activate || echo "WARNING: could not enable maintenance mode" >&2

# 2. Dump the database
echo "Dumping the WordPress database..."
mariadb-dump --single-transaction "$DB_NAME" | gzip > "$BACKUP_DIR/wordpress-db.sql.gz.partial"
mv "$BACKUP_DIR/wordpress-db.sql.gz.partial" "$BACKUP_DIR/wordpress-db.sql.gz"

# 3. Export WP options, 4. list the installed plugins
echo "Exporting WordPress settings..."
wp_cli option list --format=json > "$BACKUP_DIR/wp-options.json.partial"
mv "$BACKUP_DIR/wp-options.json.partial" "$BACKUP_DIR/wp-options.json"
wp_cli plugin list --format=json > "$BACKUP_DIR/wp-plugins.json.partial"
mv "$BACKUP_DIR/wp-plugins.json.partial" "$BACKUP_DIR/wp-plugins.json"

echo "WordPress pre-backup completed"
