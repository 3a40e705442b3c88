# shellcheck shell=sh
# import CONTAINER DIR [--live] DB..., on the new host (the compose target, runbook/services/target.py), sent
# after db-rows.sh (rows_match): waits for the db container, then restores db-dump.sh's files into
# it and fails on any table whose row count differs.
set -eu
container=$1 dir=$2; shift 2
# --live: the dumps were taken while the site took writes (the first copy): its counts, read
# after mysqldump's snapshot, may be ahead of it, so a difference is reported, not fatal; the final
# dump, taken during the freeze, is compared strictly.
live=0
if [ "${1:-}" = --live ]; then live=1; shift; fi
tries=0
until docker exec "$container" mariadb -N -e 'SELECT 1' >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 90 ]; then echo "database container $container does not answer after 90 s" >&2; exit 1; fi
  sleep 1
done
for db do
  docker exec -i "$container" mariadb < "$dir/$db.sql"
  { cat "$dir/$db.users.sql"; echo "FLUSH PRIVILEGES;"; } | docker exec -i "$container" mariadb
  if ! rows_match "$dir" "$db" new old restored docker exec "$container" mariadb; then
    [ "$live" = 1 ] || exit 1
    echo "$db: restored; row counts differ from the old host's, counted while it took writes (the final dump is compared strictly)"
  fi
done
