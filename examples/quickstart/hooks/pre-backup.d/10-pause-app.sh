#!/bin/sh
# pre_backup module 10: stop ("pause") the sample app, so that its files do not
# change while they are dumped and backed up.
#
# The demo's "service" is a state file, $work/app.paused: it exists while the app
# is stopped. A real module would run `systemctl stop myapp` or `docker stop ...`.
#
# post-backup.sh resumes it right after the backup. If a later pre_backup module
# fails (the dump, say), post_backup does not run at all: finally.sh, which runs
# on every path, resumes it then.
set -eu

# Where the demo lives: the directory of the config resticm runs with.
work=$(dirname "${RESTICM_CONFIG:?is not set: run hooks through resticm, e.g. resticm -c CONFIG hooks run pre_backup}")
log() {
    echo "$(date '+%Y-%m-%d %H:%M:%S') $(basename "$0"): $*" | tee -a "$work/hooks.log"
}

state="$work/app.paused"
if [ -e "$state" ]; then
    log "the app is already paused since $(cat "$state") (an earlier run was killed?)"
fi
date '+%Y-%m-%d %H:%M:%S' > "$state"                       # systemctl stop myapp
echo "$(date '+%Y-%m-%d %H:%M:%S') stopped" >> "$work/service.log"
log "app paused ($state); finally.sh resumes it"
exit 0
