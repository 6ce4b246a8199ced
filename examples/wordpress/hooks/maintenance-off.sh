#!/bin/bash
# post_backup (called by post-backup.sh) and finally: leave maintenance mode,
# if the site is in it. Harmless otherwise, so it can run twice.
set -euo pipefail

: "${WP_PATH:?set WP_PATH in hooks.environment}"
WP_USER=${WP_USER:-www-data}

if sudo -u "$WP_USER" wp --path="$WP_PATH" maintenance-mode is-active; then
    sudo -u "$WP_USER" wp --path="$WP_PATH" maintenance-mode deactivate
else
    echo "The site is not in maintenance mode (${RESTICM_PHASE:-?})"
fi
