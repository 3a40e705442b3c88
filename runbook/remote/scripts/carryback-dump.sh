# shellcheck shell=sh
# dump CONTAINER DIR DB..., on the new host in a late rollback (steps/carryback.py): each database
# dumped from the db container into DIR/DB.sql, with DIR/DB.counts (`table rows` a line).
set -eu
container=$1 dir=$2; shift 2
umask 077
mkdir -p "$dir"
# the official image has mariadb-dump (11.x dropped the mysqldump name); older ones mysqldump
dump=$(docker exec "$container" sh -c 'command -v mariadb-dump || command -v mysqldump') ||
  { echo "$container has neither mariadb-dump nor mysqldump" >&2; exit 1; }
for db do
  docker exec "$container" "$dump" --single-transaction --routines --events --triggers \
    --add-drop-database --databases "$db" > "$dir/$db.sql.tmp"
  docker exec "$container" mariadb -N -B -e \
    "SELECT table_name FROM information_schema.tables WHERE table_schema = '$db' AND table_type = 'BASE TABLE'" |
  while read -r table; do
    echo "$table $(docker exec "$container" mariadb -N -B -e "SELECT COUNT(*) FROM \`$db\`.\`$table\`")"
  done > "$dir/$db.counts.tmp"
  mv -f "$dir/$db.sql.tmp" "$dir/$db.sql"; mv -f "$dir/$db.counts.tmp" "$dir/$db.counts"
done
