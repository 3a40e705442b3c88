# shellcheck shell=sh
# import CONTAINER DIR DB..., on the new host (the compose target, runbook/services/target.py), sent
# after db-rows.sh (rows_match): waits for the db container, then restores db-dump.sh's files into
# it and fails on any table whose row count differs.
set -eu
container=$1 dir=$2; shift 2
tries=0
until docker exec "$container" mariadb -N -e 'SELECT 1' >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 90 ]; then echo "database container $container does not answer after 90 s" >&2; exit 1; fi
  sleep 1
done
for db do
  docker exec -i "$container" mariadb < "$dir/$db.sql"
  { cat "$dir/$db.users.sql"; echo "FLUSH PRIVILEGES;"; } | docker exec -i "$container" mariadb
  rows_match "$dir" "$db" new old restored docker exec "$container" mariadb
done
