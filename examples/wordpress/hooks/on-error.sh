#!/bin/bash
# on_error: runs once at the end of a failed run. ERROR lists every failed step.
# A real one alerts: mail, a chat webhook, your monitoring.
set -euo pipefail

echo "ALERT: backup on ${RESTICM_HOST:-?} failed (backup: ${BACKUP_STATUS:-?})"
printf '%s\n' "${ERROR:-}" | sed 's/^/  /'
# printf '%s\n' "$ERROR" | mail -s "backup failed on $(hostname)" root
