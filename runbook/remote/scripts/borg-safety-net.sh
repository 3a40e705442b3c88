# shellcheck shell=sh
# borg REPO ARCHIVE DUMPS DB... -- PATH..., on the old host (steps/backup.py), after the passphrase
# line and borg-open-or-init.sh: fresh dumps of the databases into DUMPS, then one Borg archive of
# the paths that exist and the dumps; prints `borg create --json`.
set -eu
repo=$1 archive=$2 dumps=$3; shift 3
dbs=""
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do dbs="$dbs $1"; shift; done
[ "$#" -gt 0 ] && shift
umask 077
mkdir -p "$dumps"
for db in $dbs; do
  mysqldump --single-transaction --routines --events --databases "$db" > "$dumps/$db.sql.tmp"
  mv -f "$dumps/$db.sql.tmp" "$dumps/$db.sql"
done
open_or_init "$repo"
n=$#
for p do
  if [ -e "$p" ]; then set -- "$@" "$p"; else echo "runbook: not on this host, skipped: $p" >&2; fi
done
shift "$n"
# the name is fixed by the plan; a repository that already has it (an earlier migration) gets .2, .3
name=$archive i=1
while borg info "$repo::$name" >/dev/null 2>&1; do i=$((i + 1)); name="$archive.$i"; done
borg create --json --compression lz4 "$repo::$name" "$@" "$dumps"
