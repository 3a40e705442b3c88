# shellcheck shell=sh
# rows_match DIR DB HERE THERE DONE MARIADB...: a function, not a command. Its text is sent in front
# of db-import.sh's and carryback-import.sh's (`sh -c "ROWS IMPORT" import ...`), which call it after
# restoring DB: each `table rows` line of DIR/DB.counts (or of $rows_file, where the caller sets
# it) against the table's COUNT(*) now, asked with the client command MARIADB... (`mariadb`,
# `docker exec CONTAINER mariadb`). It exits 1 naming the
# first table that differs (HERE: this host, THERE: the dump's), else prints
# "DB: N tables DONE, row counts match the THERE host". A subshell: the caller's variables stay.
# With $rows_now set, those are the counts already (`table rows` lines, asked by rows_sql in the
# client session that applied the last changes: one docker exec less in the freeze).
#
# rows_sql FILE DB: one query that counts every table FILE names (`table rows` lines): every table
# in one client call (a docker exec each would cost the freeze window). Empty when FILE names none.
rows_sql() {
  sed -n "s/^\([^ ][^ ]*\) .*/SELECT '\1', COUNT(*) FROM \`$2\`.\`\1\`/p" "$1" | sed '2,$s/^/UNION ALL /'
}
# primary_sql FILE DB: read_only goes off only if every table FILE names has its rows (else it stays on).
primary_sql() {
  ok=$(sed -n "s/^\([^ ][^ ]*\) \([0-9][0-9]*\).*/(SELECT COUNT(*) FROM \`$2\`.\`\1\`) = \2/p" "$1" | sed '2,$s/^/AND /')
  printf 'SET @runbook_rows_ok = (%s);\nSET GLOBAL read_only = IF(@runbook_rows_ok, 0, 1);\n' "${ok:-TRUE}"
}

rows_match() (
  dir=$1 db=$2 here=$3 there=$4 verb=$5; shift 5
  file=${rows_file:-$dir/$db.counts}
  now=${rows_now:-}
  if [ -z "${rows_now+set}" ]; then
    sql=$(rows_sql "$file" "$db")
    if [ -n "$sql" ]; then now=$("$@" -N -B -e "$sql" | tr '\t' ' ') || true; fi
  fi
  awk -v now="$now" -v db="$db" -v here="$here" -v there="$there" -v verb="$verb" '
    BEGIN { n = split(now, lines, "\n"); for (i = 1; i <= n; i++) { split(lines[i], f, " "); c[f[1]] = f[2] } }
    NF { t++; if (!($1 in c) || c[$1] != $2) {
      print db "." $1 ": " ($1 in c ? c[$1] : "no") " rows on the " here " host, " $2 " on the " there " one" > "/dev/stderr"
      bad = 1; exit 1 } }
    END { if (bad) exit 1; if (!t) t = 0; print db ": " t " tables " verb ", row counts match the " there " host" }' "$file"
)
