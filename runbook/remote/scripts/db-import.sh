# shellcheck shell=sh
# shellcheck disable=SC2034  # rows_file is read by rows_match (db-rows.sh), sent in front of this text
# import CONTAINER DIR [--live] DB..., on the new host (the compose target, runbook/services/target.py), sent
# after db-rows.sh (rows_match): waits for the db container, then brings each DB up to what
# db-dump.sh wrote into DIR.
#
# The container's copy is a replica until the final import: read_only is on (the application's
# accounts cannot write; root, which restores, can), and DIR/DB.state (the new host's own: the pull
# leaves it) says what it holds: `ID K [applying|primary]`, the dump ID with its changes 1..K. The
# newest complete dump (DB.ID.done) is restored in full when it is not the state's; then only the
# changes not applied yet (DB.ID.delta.K.sql), each marked `applying` first. A copy that is
# not what the state says (an apply cut off, or read_only found off: the container was made
# again and may have taken writes) is restored again from the dump and its changes, all here.
#
# --live: the site still takes writes (the first copy, the catch-up before the freeze): counts read
# after a snapshot may be ahead of it, so a difference is reported, not fatal. Without it (the
# final import, during the freeze) the counts are compared strictly, then read_only goes off and the
# copy is the primary: changes that come after that are refused, never applied over its writes.
set -eu
umask 077  # DIR/DB.state, as private as the dumps
container=$1 dir=$2; shift 2
live=0
if [ "${1:-}" = --live ]; then live=1; shift; fi
tries=0
sql() { docker exec "$container" mariadb -N -B -e "$1"; }
# The first answer says whether the copy is read-only too (one docker exec less in the freeze).
until ro=$(sql 'SELECT @@global.read_only' 2>/dev/null); do
  tries=$((tries + 1))
  if [ "$tries" -ge 90 ]; then echo "database container $container does not answer after 90 s" >&2; exit 1; fi
  sleep 1
done

primary=0
for last do :; done  # the last database: read_only goes off with its final changes
mark() { echo "$2" > "$dir/$1.state.tmp" && mv -f "$dir/$1.state.tmp" "$dir/$1.state"; }

restore() {  # DB ID
  mark "$1" "$2 0 applying"
  sql 'SET GLOBAL read_only = ON'
  ro=1
  docker exec -i "$container" mariadb < "$dir/$1.$2.sql"
  { cat "$dir/$1.$2.users.sql"; echo "FLUSH PRIVILEGES;"; } | docker exec -i "$container" mariadb
  mark "$1" "$2 0"
}

check() {  # DB: against $rows_file, strictly, or (--live) reported only
  if ! rows_match "$dir" "$1" new old restored docker exec "$container" mariadb; then
    [ "$live" = 1 ] || exit 1
    echo "$1: row counts differ from the old host's, counted while it took writes (the final import is compared strictly)"
  fi
}

for db do
  id=$(find "$dir" -maxdepth 1 -name "$db.*.done" | sed 's/.*\.\([0-9]*\)\.done$/\1/' | sort -n | tail -n 1)
  if [ -z "$id" ]; then echo "$db: no complete dump in $dir" >&2; exit 1; fi
  at=$dir/$db.$id
  sid='' k=0 flag=''
  if [ -s "$dir/$db.state" ]; then read -r sid k flag < "$dir/$db.state" || true; fi
  newest=$(find "$dir" -maxdepth 1 -name "$db.$id.delta.*.end" | sed 's/.*\.delta\.\([0-9]*\)\.end$/\1/' | sort -n | tail -n 1)
  newest=${newest:-0}
  if [ "$sid" = "$id" ] && [ "$flag" = primary ]; then
    if [ "$newest" -gt "$k" ]; then
      echo "$db: changes on the old host after the new host's copy became the primary: not applied" >&2; exit 1
    fi
    echo "$db: the new host's copy is the primary already"; continue
  fi
  restored=1
  if [ "$sid" != "$id" ]; then
    restore "$db" "$id"; k=0
  elif [ "$flag" = applying ] || [ "$ro" != 1 ]; then
    echo "$db: the new host's copy may differ from its state (an import cut off, or read_only off): restored again"
    restore "$db" "$id"; k=0
  else
    restored=0
  fi
  applied=0
  # The newest counts: of every table the changes since the dump name, or of the dump's tables.
  rows_file=$at.counts
  if [ "$newest" -gt 0 ]; then rows_file=$at.delta.$newest.counts; fi
  unset rows_now
  while [ "$k" -lt "$newest" ]; do
    k=$((k + 1))
    mark "$db" "$id $k applying"
    if [ "$live" = 0 ] && [ "$k" = "$newest" ]; then
      # The final import's last changes, their count and (for the last database) read_only off
      # if the counts match, in one client session: two docker execs less while requests wait.
      rows_now=$({
        cat "$at.delta.$k.sql"
        echo "DELIMITER ;"
        q=$(rows_sql "$rows_file" "$db")
        if [ -n "$q" ]; then echo "$q;"; fi
        if [ "$db" = "$last" ]; then primary_sql "$rows_file" "$db"; fi
      } | docker exec -i "$container" mariadb -N -B)
      rows_now=$(printf '%s\n' "$rows_now" | tr '\t' ' ')
      [ "$db" = "$last" ] && primary=1
    else
      docker exec -i "$container" mariadb < "$at.delta.$k.sql"
    fi
    mark "$db" "$id $k"
    applied=$((applied + 1))
  done
  if [ "$restored" = 1 ] || [ "$applied" -gt 0 ] || [ "$live" = 0 ]; then check "$db"; fi
  if [ "$newest" -gt 0 ]; then
    echo "$db: $applied change set(s) from the binary log applied, up to $(cat "$at.delta.$newest.end")"
  elif [ "$restored" = 1 ]; then
    echo "$db: restored from the full dump"
  fi
  if [ "$live" = 0 ]; then
    mark "$db" "$id $k primary"
  fi
done
if [ "$live" = 0 ]; then
  # Off already when the last database's changes came with its counts (and they matched).
  [ "$primary" = 1 ] || sql 'SET GLOBAL read_only = OFF'
  echo "the new host's databases are the primary now (read_only off)"
fi
