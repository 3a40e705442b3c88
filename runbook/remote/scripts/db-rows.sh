# shellcheck shell=sh
# rows_match DIR DB HERE THERE DONE MARIADB...: a function, not a command. Its text is sent in front
# of db-import.sh's and carryback-import.sh's (`sh -c "ROWS IMPORT" import ...`), which call it after
# restoring DB: each `table rows` line of DIR/DB.counts (or of $rows_file, where the caller sets
# it) against the table's COUNT(*) now, asked with the client command MARIADB... (`mariadb`,
# `docker exec CONTAINER mariadb`). It exits 1 naming the
# first table that differs (HERE: this host, THERE: the dump's), else prints
# "DB: N tables DONE, row counts match the THERE host". A subshell: the caller's variables stay.
rows_match() (
  dir=$1 db=$2 here=$3 there=$4 verb=$5; shift 5
  tables=0
  while read -r table rows; do
    now=$("$@" -N -B -e "SELECT COUNT(*) FROM \`$db\`.\`$table\`")
    if [ "$now" != "$rows" ]; then
      echo "$db.$table: $now rows on the $here host, $rows on the $there one" >&2; exit 1
    fi
    tables=$((tables + 1))
  done < "${rows_file:-$dir/$db.counts}"
  echo "$db: $tables tables $verb, row counts match the $there host"
)
