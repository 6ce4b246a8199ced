#!/bin/bash
# post_backup AND finally: start the containers pre-backup.sh stopped.
# Nothing recorded (nothing stopped, or already restarted): nothing to do.
set -euo pipefail

: "${STOPPED_FILE:?set STOPPED_FILE in hooks.environment}"
if [ ! -s "$STOPPED_FILE" ]; then
    echo "No containers to restart (${RESTICM_PHASE:-?})"
    rm -f "$STOPPED_FILE"
    exit 0
fi
failed=()
while IFS= read -r container; do
    [ -n "$container" ] || continue
    echo "Starting $container"
    docker start "$container" >/dev/null || failed+=("$container")
done < "$STOPPED_FILE"
if [ ${#failed[@]} -gt 0 ]; then
    printf '%s\n' "${failed[@]}" > "$STOPPED_FILE"   # finally tries them again
    echo "ERROR: could not start: ${failed[*]}" >&2
    exit 1
fi
rm -f "$STOPPED_FILE"
echo "Containers restarted"
