#!/bin/sh
# resticm quickstart: back up sample data into a local restic repository, with
# hooks that pause an "app", dump its "database", clean up and resume it.
#
#     examples/quickstart/run.sh          # run it again for a second snapshot
#
# Environment:
#   RESTICM_QUICKSTART_DIR  work directory (default /var/tmp/resticm-quickstart)
#   RESTICM                 the resticm command (default: resticm), may carry
#                           arguments, e.g. RESTICM="python3 -m resticm_core"
#   QUICKSTART_FAIL_DUMP=1  make the dump module fail: see the failure path
#   QUICKSTART_SKIP=1       make a module exit 75: see a soft skip
#
# Exits with resticm's exit code: 0 ok, 1 a step failed, 3 partial backup.
set -eu

here=$(cd "$(dirname "$0")" && pwd -P)
work=${RESTICM_QUICKSTART_DIR:-/var/tmp/resticm-quickstart}
# Deliberately used unquoted below ($resticm), so that a command with arguments
# such as "python3 -m resticm_core" is split into its words.
resticm=${RESTICM:-resticm}

if ! command -v restic >/dev/null 2>&1; then
    echo "restic is not installed: sudo apt-get install restic" >&2
    exit 1
fi
# shellcheck disable=SC2086 # word splitting wanted, see above
if ! $resticm --version >/dev/null 2>&1; then
    echo "'$resticm' does not run: install resticm_core (pip install -e .) or set RESTICM" >&2
    exit 1
fi

# resticm refuses hooks that group or others could change (they run as you); a
# checkout made with umask 002 has group-writable files, so tighten the hooks.
chmod -R go-w "$here/hooks"

# Everything the demo creates is private: the repository, the password, the dumps.
umask 077
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
echo "==> work directory: $work"

# -- sample data: a few files and an "app" with a tiny CSV "database" ----------------
if [ ! -d "$work/data" ]; then
    mkdir -p "$work/data/documents" "$work/data/app/db"
    printf 'Hello from the resticm quickstart.\n' > "$work/data/documents/hello.txt"
    printf 'milk\neggs\nbread\n' > "$work/data/documents/shopping-list.txt"
    printf '[app]\nname = quickstart-app\nport = 8080\n' > "$work/data/app/app.ini"
    printf 'id,name\n1,Ada\n2,Grace\n' > "$work/data/app/db/customers.csv"
    printf 'id,customer_id,item\n' > "$work/data/app/db/orders.csv"
    echo "==> created sample data in $work/data"
fi
# The app is busy: one new order per run, so every snapshot has something new.
orders="$work/data/app/db/orders.csv"
printf '%s,%s,%s\n' "$(wc -l < "$orders" | tr -d ' ')" 1 "widget" >> "$orders"

# -- the repository password: generated once, kept in a 0600 file --------------------
if [ ! -s "$work/password" ]; then
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$work/password"
    chmod 600 "$work/password"
    echo "==> generated the repository password in $work/password (without it nothing can be restored)"
fi

# -- the config, from the template beside this script ------------------------------
# Values are written single-quoted in YAML ('' escapes a quote) and escaped for sed.
yaml_quoted() { printf '%s' "$1" | sed "s/'/''/g"; }
sed_escaped() { printf '%s' "$1" | sed 's/[\\|&]/\\&/g'; }
work_value=$(sed_escaped "$(yaml_quoted "$work")")
hooks_value=$(sed_escaped "$(yaml_quoted "$here/hooks")")
sed -e "s|@WORK@|$work_value|g" -e "s|@HOOKS@|$hooks_value|g" \
    "$here/config.yaml.in" > "$work/config.yaml.new"
chmod 600 "$work/config.yaml.new"
mv "$work/config.yaml.new" "$work/config.yaml"
echo "==> wrote $work/config.yaml (hooks from $here/hooks)"

# -- resticm ---------------------------------------------------------------------------
echo
echo "==> $resticm -c $work/config.yaml init"
# shellcheck disable=SC2086
$resticm -c "$work/config.yaml" init

echo
echo "==> $resticm -c $work/config.yaml backup -v"
status=0
# shellcheck disable=SC2086
$resticm -c "$work/config.yaml" backup -v || status=$?

echo
case $status in
    0) verdict="success" ;;
    1) verdict="a step failed: see the ERROR lines above, $work/last-error.txt and $work/resticm.log" ;;
    3) verdict="partial backup: the snapshot was written but some files could not be read" ;;
    75) verdict="another resticm run holds the lock of this configuration" ;;
    *) verdict="see $work/resticm.log" ;;
esac
echo "==> resticm exited with $status: $verdict"

# -- what is in the repository, seen with plain restic -----------------------------------
restic_() (
    unset RESTIC_PASSWORD RESTIC_PASSWORD_COMMAND RESTIC_REPOSITORY_FILE
    RESTIC_REPOSITORY="$work/repo"
    RESTIC_PASSWORD_FILE="$work/password"
    export RESTIC_REPOSITORY RESTIC_PASSWORD_FILE
    restic "$@"
)
echo
echo "==> restic snapshots   (RESTIC_REPOSITORY=$work/repo RESTIC_PASSWORD_FILE=$work/password)"
restic_ snapshots
echo
echo "==> restic ls latest   (note $work/dumps/app-db.sql: the dump made by the pre_backup hook)"
if [ -n "$(restic_ --no-lock list snapshots)" ]; then
    restic_ ls latest
else
    echo "(no snapshot yet)"
fi

echo
echo "==> the app's state: $(if [ -e "$work/app.paused" ]; then echo "PAUSED"; else echo "running"; fi)" \
     "(history in $work/service.log)"
echo "==> dumps left in $work/dumps: $(ls "$work/dumps" 2>/dev/null | wc -l | tr -d ' ')" \
     "(post-backup.sh removes them after a successful backup, keeps them after a failed one)"
echo "==> logs: $work/resticm.log (everything, hook output included), $work/hooks.log (the hooks' trail)"
exit "$status"
