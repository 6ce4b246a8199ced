#!/bin/bash
# post_backup module AND finally hook: start the containers 30-stop-containers.sh
# stopped. Harmless when there is nothing to restart, so it can run twice.
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
    if ! docker start "$container" >/dev/null; then
        echo "WARNING: failed to start $container" >&2
        failed+=("$container")
    fi
done < "$STOPPED_FILE"

# Keep the ones that did not start: the finally hook tries them again.
if [ ${#failed[@]} -gt 0 ]; then
    printf '%s\n' "${failed[@]}" > "$STOPPED_FILE"
    echo "ERROR: could not start: ${failed[*]}" >&2
    exit 1
fi
rm -f "$STOPPED_FILE"
echo "Containers restarted"
