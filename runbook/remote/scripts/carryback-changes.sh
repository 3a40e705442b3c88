# shellcheck shell=sh
# changes MARKER CONTAINER FOLDER... -- DB..., on the new host, read-only (steps/carryback.py):
# `file PATH` for each file under the folders written after MARKER (200 a folder at most), and
# `rows DB TABLE N` for every table of each database in the container.
set -eu
marker=$1 container=$2; shift 2
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  [ -d "$1" ] && find "$1" -type f -newer "$marker" -printf 'file %P\n' | sed "s|^file |file $1/|" | head -n 200
  shift
done
[ "$#" -gt 0 ] && shift
for db do
  docker exec "$container" mariadb -N -B -e \
    "SELECT table_name FROM information_schema.tables WHERE table_schema = '$db' AND table_type = 'BASE TABLE'" |
  while read -r table; do
    echo "rows $db $table $(docker exec "$container" mariadb -N -B -e "SELECT COUNT(*) FROM \`$db\`.\`$table\`")"
  done
done
