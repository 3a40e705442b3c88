# shellcheck shell=sh
# import DIR DB..., on the old host in a late rollback (steps/carryback.py): carryback-dump.sh's
# files restored into its MariaDB (root over the socket), failing on any row count that differs.
set -eu
dir=$1; shift
for db do
  mariadb < "$dir/$db.sql"
  tables=0
  while read -r table rows; do
    now=$(mariadb -N -B -e "SELECT COUNT(*) FROM \`$db\`.\`$table\`")
    if [ "$now" != "$rows" ]; then
      echo "$db.$table: $now rows on the old host, $rows on the new one" >&2; exit 1
    fi
    tables=$((tables + 1))
  done < "$dir/$db.counts"
  echo "$db: $tables tables carried back, row counts match the new host"
done
