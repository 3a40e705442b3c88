# shellcheck shell=sh
# shellcheck disable=SC2154  # file, frozen and thawed: set by freeze_file (cgroup-freeze.sh, prepended)
# hold ACTION CONTAINER, on the new host (runbook/remote/hold.py): ACTION freeze or thaw the container's
# cgroup, or state: print held, serving or missing (not running).

set -e
action=$1; name=$2
pid=$(docker inspect -f '{{.State.Pid}}' "$name" 2>/dev/null || echo 0)
if [ "$pid" = 0 ]; then
  [ "$action" = state ] && echo missing
  [ "$action" = freeze ] && { echo "container $name is not running" >&2; exit 1; }
  exit 0
fi
freeze_file "$pid"
case $action in
  freeze) echo "$frozen" > "$file";;
  thaw) echo "$thawed" > "$file";;
  state) if [ "$(cat "$file")" = "$thawed" ]; then echo serving; else echo held; fi;;
esac
