# shellcheck shell=sh
# shellcheck disable=SC2016  # the sed programs match MariaDB's `quoted` names: no expansion meant
# dump DIR [--changes] DB..., on the old host as root (steps/database.py), every file mode 0600.
#
# A full copy of DB is named by its ID (nanoseconds): DB.ID.sql (mysqldump, one consistent
# transaction), DB.ID.users.sql (its accounts, host '%'), DB.ID.counts (`table rows` a line),
# DB.ID.pos (the binary log position of the dump's snapshot, `FILE POS`; empty when changes cannot
# be shipped) and, last, DB.ID.done. Older copies' files go.
#
# --changes: only what DB changed since, from the server's binary log (mysqlbinlog --database=DB
# from the last position to the server's position now): DB.ID.delta.K.sql, DB.ID.delta.K.counts
# (the row counts now of every table the changes since the dump name) and, last,
# DB.ID.delta.K.end (`FILE POS`). Its size follows the change, not the database. Where that cannot
# be (binary log off, binlog_format not ROW, no position, the log since purged) it says why and
# copies in full. Debian's MariaDB has log_bin off and binlog_format MIXED.
#
# No file is ever written twice under one name: the new host's rsync, which compares size and
# time, cannot keep a stale one. DB.counts (the row counts as of the last copy, for the carry-back)
# is the old host's own.
set -eu
dir=$1; shift
changes=0
if [ "${1:-}" = --changes ]; then changes=1; shift; fi
umask 077
mkdir -p "$dir"
q() { mariadb -N -B -r -e "$1"; }
# mysqlbinlog_at DIR ARG...: mysqlbinlog run in DIR, the server's binary log folder. A source whose
# MariaDB runs in a container (runbook/services/composesource.py) defines it, and mariadb and
# mysqldump, in front of this text to run them there.
command -v mysqlbinlog_at >/dev/null 2>&1 || mysqlbinlog_at() { (cd "$1" && shift && mysqlbinlog "$@"); }
# Changes are shipped for one database alone only from row events: each names its table's database,
# where a statement names only the session's default one (MIXED, STATEMENT).
binlog=$(q "SELECT @@log_bin AND @@binlog_format = 'ROW'")
off() {
  if [ "$(q 'SELECT @@log_bin')" != 1 ]; then echo "the server's binary log is off (log_bin)"
  else echo "binlog_format is $(q 'SELECT @@binlog_format'), not ROW"; fi
}

counts() {  # DB TABLE...: `table rows` a line
  db=$1; shift
  for table do echo "$table $(q "SELECT COUNT(*) FROM \`$db\`.\`$table\`")"; done
}

tables() { q "SELECT table_name FROM information_schema.tables WHERE table_schema = '$1' AND table_type = 'BASE TABLE'"; }

newest() {  # DB: the ID of its newest complete copy, or nothing
  find "$dir" -maxdepth 1 -name "$1.*.done" | sed 's/.*\.\([0-9]*\)\.done$/\1/' | sort -n | tail -n 1
}

named_tables() {  # DB, mysqlbinlog's text on stdin: the table names its changes of DB name, one a line
  name='`?[[:alnum:]_$]+`?'
  sed -n -e "s/.*Table_map: \`$1\`\.\`\([^\`]*\)\`.*/MAP \1/p" -e '/^#/d' -e p |
    grep -oiE "^MAP .*|^[[:space:]]*((INSERT|REPLACE)([[:space:]]+(LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE))*([[:space:]]+INTO)?|UPDATE([[:space:]]+(LOW_PRIORITY|IGNORE))*|DELETE([[:space:]]+(LOW_PRIORITY|QUICK|IGNORE))*[[:space:]]+FROM)[[:space:]]+($name\.)?$name" |
    sed 's/.*[.[:space:]]//; s/`//g' | sort -u
}

full() {
  db=$1
  id=$(date +%s%N)
  at=$dir/$db.$id
  master=
  if [ "$binlog" = 1 ]; then master=--master-data=2; fi
  # shellcheck disable=SC2086  # $master: one option or none
  mysqldump --single-transaction $master --routines --events --triggers --add-drop-database --databases "$db" \
    > "$at.sql"
  q "SELECT DISTINCT CONCAT('\`', User, '\`@\`', Host, '\`') FROM mysql.db WHERE Db = '$db'" |
  while read -r account; do
    q "SHOW CREATE USER $account" | sed 's/^CREATE USER/CREATE OR REPLACE USER/; s/@`[^`]*`/@`%`/; s/$/;/'
    q "SHOW GRANTS FOR $account" | sed 's/@`[^`]*`/@`%`/; s/$/;/'
  done > "$at.users.sql"
  # shellcheck disable=SC2046  # one word a table name
  counts "$db" $(tables "$db") > "$at.counts"
  head -n 80 "$at.sql" |
    sed -n "s/^-- CHANGE MASTER TO MASTER_LOG_FILE='\([^']*\)', MASTER_LOG_POS=\([0-9]*\);.*/\1 \2/p" > "$at.pos"
  : > "$at.done"
  find "$dir" -maxdepth 1 -name "$db.[0-9]*" ! -name "$db.$id.*" -exec rm -f {} +
  cp "$at.counts" "$dir/$db.counts"
  if [ -s "$at.pos" ]; then
    echo "$db: dumped in full at binary log position $(cat "$at.pos")"
  else
    echo "$db: dumped in full; its changes cannot be shipped alone: $(off)"
  fi
}

delta() {
  db=$1
  if [ "$binlog" != 1 ]; then echo "$db: $(off)"; full "$db"; return; fi
  id=$(newest "$db")
  if [ -z "$id" ] || [ ! -s "$dir/$db.$id.pos" ]; then
    echo "$db: no binary log position to start from (the last copy was made without one)"
    full "$db"; return
  fi
  at=$dir/$db.$id
  last=$(find "$dir" -maxdepth 1 -name "$db.$id.delta.*.end" | sed 's/.*\.delta\.\([0-9]*\)\.end$/\1/' | sort -n | tail -n 1)
  if [ -n "$last" ]; then from=$at.delta.$last.end; else last=0; from=$at.pos; fi
  read -r file pos < "$from"
  logs=$(q 'SHOW BINARY LOGS' | cut -f1)
  if ! printf '%s\n' "$logs" | grep -qxF "$file"; then
    echo "$db: binary log $file is gone from the server (expired or purged)"
    full "$db"; return
  fi
  q 'SHOW MASTER STATUS' | cut -f1,2 > "$at.end.tmp"
  read -r efile epos < "$at.end.tmp"
  if [ "$efile $epos" = "$file $pos" ]; then
    rm -f "$at.end.tmp"
    echo "$db: no change since binary log position $file $pos"; return
  fi
  k=$((last + 1))
  base=$(dirname "$(q 'SELECT @@log_bin_basename')")
  # shellcheck disable=SC2046  # one word a log file name
  mysqlbinlog_at "$base" --database="$db" --start-position="$pos" --stop-position="$epos" \
    $(printf '%s\n' "$logs" | sed -n "/^$file\$/,/^$efile\$/p") > "$at.delta.$k.sql.tmp"
  # The tables the changes since the dump name, counted now.
  named=$(cat "$at".delta.*.sql "$at.delta.$k.sql.tmp" 2>/dev/null | named_tables "$db")
  # shellcheck disable=SC2046  # one word a table name
  counts "$db" $(printf '%s\n' "$named" | grep -xF "$(tables "$db")" || true) > "$at.delta.$k.counts"
  mv -f "$at.delta.$k.sql.tmp" "$at.delta.$k.sql"
  mv -f "$at.end.tmp" "$at.delta.$k.end"
  # DB.counts: the dump's counts, with the ones counted now in place of theirs. (Not awk's
  # NR == FNR: with no table counted now, as when only another database changed, it would take
  # the dump's counts for the ones counted now and print nothing.)
  awk -v now="$at.delta.$k.counts" '
    BEGIN { while ((getline line < now) > 0) { split(line, f, " "); n[f[1]] = f[2] } }
    { print $1, ($1 in n ? n[$1] : $2) }' "$at.counts" > "$dir/$db.counts.tmp"
  mv -f "$dir/$db.counts.tmp" "$dir/$db.counts"
  echo "$db: changes $k, binary log $file $pos to $efile $epos ($(wc -c < "$at.delta.$k.sql") bytes)"
}

for db do
  if [ "$changes" = 1 ]; then delta "$db"; else full "$db"; fi
done
