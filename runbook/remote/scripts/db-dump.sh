# shellcheck shell=sh
# shellcheck disable=SC2016  # the sed programs match MariaDB's `quoted` names: no expansion meant
# dump DIR DB..., on the old host as root (steps/database.py): for each database DB.sql (mysqldump),
# DB.users.sql (its accounts, host '%') and DB.counts (`table rows` a line) in DIR, mode 0600.
set -eu
dir=$1; shift
umask 077
mkdir -p "$dir"
q() { mariadb -N -B -r -e "$1"; }
for db do
  mysqldump --single-transaction --routines --events --triggers --add-drop-database --databases "$db" \
    > "$dir/$db.sql.tmp"
  q "SELECT DISTINCT CONCAT('\`', User, '\`@\`', Host, '\`') FROM mysql.db WHERE Db = '$db'" |
  while read -r account; do
    q "SHOW CREATE USER $account" | sed 's/^CREATE USER/CREATE OR REPLACE USER/; s/@`[^`]*`/@`%`/; s/$/;/'
    q "SHOW GRANTS FOR $account" | sed 's/@`[^`]*`/@`%`/; s/$/;/'
  done > "$dir/$db.users.sql.tmp"
  q "SELECT table_name FROM information_schema.tables WHERE table_schema = '$db' AND table_type = 'BASE TABLE'" |
  while read -r table; do
    echo "$table $(q "SELECT COUNT(*) FROM \`$db\`.\`$table\`")"
  done > "$dir/$db.counts.tmp"
  for part in sql users.sql counts; do mv -f "$dir/$db.$part.tmp" "$dir/$db.$part"; done
done
