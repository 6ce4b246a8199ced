#!/bin/sh
# Install (Debian packages) and start the database servers the dump tests use:
# PostgreSQL and MariaDB on 127.0.0.1 with a password-authenticated superuser
# `resticm_test`, and sqlite3. Idempotent: servers already running are reused.
# The tests read the same defaults (tests/databases.py); override with
# RESTICM_TEST_PGPORT / RESTICM_TEST_MYSQL_PORT if your servers listen elsewhere.
# Test-only credentials: the servers listen on loopback only.
set -eu

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

USER_NAME=resticm_test
USER_PASSWORD=resticm-test-password
PGPORT=${RESTICM_TEST_PGPORT:-5432}
MYSQL_PORT=${RESTICM_TEST_MYSQL_PORT:-3306}

missing=""
command -v pg_dump >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null 2>&1 || missing="$missing postgresql postgresql-client"
command -v mariadbd >/dev/null 2>&1 || missing="$missing mariadb-server"
command -v mariadb-dump >/dev/null 2>&1 || missing="$missing mariadb-client"
command -v sqlite3 >/dev/null 2>&1 || missing="$missing sqlite3"
if [ -n "$missing" ]; then
    echo "==> installing database packages:$missing"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# -- PostgreSQL ------------------------------------------------------------------------------
version=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1}')
if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    as_root pg_createcluster "$version" main -p "$PGPORT" >/dev/null
fi
cluster=$(pg_lsclusters -h | awk 'NR==1 {print $2}')
if ! pg_lsclusters -h | awk 'NR==1 {print $4}' | grep -q online; then
    echo "==> starting PostgreSQL $version/$cluster"
    # A server killed a moment ago may still hold its socket lock: retry briefly.
    tries=0
    until as_root pg_ctlcluster "$version" "$cluster" start; do
        tries=$((tries + 1))
        if [ "$tries" -ge 10 ]; then
            echo "PostgreSQL did not start; see /var/log/postgresql/" >&2
            exit 1
        fi
        sleep 1
    done
fi
pgport=$(pg_lsclusters -h | awk 'NR==1 {print $3}')
as_root runuser -u postgres -- psql -q -p "$pgport" -d postgres -v ON_ERROR_STOP=1 <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$USER_NAME') THEN
    CREATE ROLE $USER_NAME LOGIN SUPERUSER PASSWORD '$USER_PASSWORD';
  ELSE
    ALTER ROLE $USER_NAME LOGIN SUPERUSER PASSWORD '$USER_PASSWORD';
  END IF;
END \$\$;
SQL
echo "==> PostgreSQL on 127.0.0.1:$pgport (user $USER_NAME)"

# -- MariaDB -----------------------------------------------------------------------------------
if ! mariadb-admin --protocol=socket ping >/dev/null 2>&1; then
    echo "==> starting MariaDB"
    as_root mkdir -p /run/mysqld
    as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
    if ! pgrep -x mariadbd >/dev/null 2>&1 && ! pgrep -x mysqld >/dev/null 2>&1; then
        # Left by a server that was killed: mysqld_safe would take the stale pid
        # (or a reused one) for a running server and refuse to start.
        as_root rm -f /run/mysqld/mysqld.pid /run/mysqld/mysqld.sock
    fi
    # No init system in containers: start mysqld_safe in the background ourselves.
    as_root sh -c "nohup mysqld_safe --bind-address=127.0.0.1 --port=$MYSQL_PORT >/tmp/resticm-mariadb.log 2>&1 &"
    tries=0
    until mariadb-admin --protocol=socket ping >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            echo "MariaDB did not start; see /tmp/resticm-mariadb.log" >&2
            exit 1
        fi
        sleep 1
    done
fi
as_root mariadb --protocol=socket -u root <<SQL
CREATE USER IF NOT EXISTS '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$USER_PASSWORD';
CREATE USER IF NOT EXISTS '$USER_NAME'@'localhost' IDENTIFIED BY '$USER_PASSWORD';
ALTER USER '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$USER_PASSWORD';
ALTER USER '$USER_NAME'@'localhost' IDENTIFIED BY '$USER_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$USER_NAME'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$USER_NAME'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
echo "==> MariaDB on 127.0.0.1:$MYSQL_PORT (user $USER_NAME)"
