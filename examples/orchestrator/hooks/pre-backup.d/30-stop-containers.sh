#!/bin/bash
# pre_backup module: stop the application containers for a consistent backup,
# recording each one right after stopping it, for 20-start-containers.sh.
set -euo pipefail

: "${STOPPED_FILE:?set STOPPED_FILE in hooks.environment}"
read -r -a containers <<< "${CONTAINERS:-}"
mkdir -p "$(dirname "$STOPPED_FILE")"
# Append, never truncate: containers recorded by a run that was killed before
# restarting them are restarted by this run's finally.
touch "$STOPPED_FILE"
chmod 600 "$STOPPED_FILE"

running=$(docker ps --format '{{.Names}}')
for container in "${containers[@]}"; do
    if ! grep -qxF "$container" <<< "$running"; then
        echo "$container is not running, skipping"
        continue
    fi
    echo "Stopping $container"
    if ! docker stop --time "${STOP_GRACE:-30}" "$container" >/dev/null; then
        # The ones stopped so far are recorded: finally restarts them.
        echo "ERROR: failed to stop container $container - backup aborted" >&2
        exit 1
    fi
    echo "$container" >> "$STOPPED_FILE"
done
echo "Containers stopped: $(wc -l < "$STOPPED_FILE")"
