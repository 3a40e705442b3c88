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
  file=${rows_file:-$dir/$db.counts}
  # Every table counted in one client call (a docker exec each would cost the freeze window).
  sql=$(sed -n "s/^\([^ ][^ ]*\) .*/SELECT '\1', COUNT(*) FROM \`$db\`.\`\1\`/p" "$file" | sed '2,$s/^/UNION ALL /')
  now=
  if [ -n "$sql" ]; then now=$("$@" -N -B -e "$sql" | tr '\t' ' ') || true; fi
  awk -v now="$now" -v db="$db" -v here="$here" -v there="$there" -v verb="$verb" '
    BEGIN { n = split(now, lines, "\n"); for (i = 1; i <= n; i++) { split(lines[i], f, " "); c[f[1]] = f[2] } }
    NF { t++; if (!($1 in c) || c[$1] != $2) {
      print db "." $1 ": " ($1 in c ? c[$1] : "no") " rows on the " here " host, " $2 " on the " there " one" > "/dev/stderr"
      bad = 1; exit 1 } }
    END { if (bad) exit 1; if (!t) t = 0; print db ": " t " tables " verb ", row counts match the " there " host" }' "$file"
)
