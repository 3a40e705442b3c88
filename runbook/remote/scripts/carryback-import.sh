# shellcheck shell=sh
# import DIR DB..., on the old host in a late rollback (the Apache source, runbook/services/source.py),
# sent after db-rows.sh (rows_match): carryback-dump.sh's files restored into its MariaDB (root over
# the socket), failing on any row count that differs.
set -eu
dir=$1; shift
for db do
  mariadb < "$dir/$db.sql"
  rows_match "$dir" "$db" old new "carried back" mariadb
done
