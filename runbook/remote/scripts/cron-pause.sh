# shellcheck shell=sh
# cron MODE KIND WHERE LINE (steps/siteapp.py): one cron line of the old host.
#   MODE pause | resume | state | wait; KIND user (WHERE: the crontab's user) or file (WHERE: an
#   /etc/cron.d file); LINE the line as the inventory spells it (whitespace does not matter).
#   pause comments it out as "#runbook-paused: LINE", resume puts it back (both idempotent;
#   exit 3 when the line is not there at all); state prints active, paused or missing; wait
#   (LINE: the job's command) returns once no run of it started by cron is going (exit 4 after
#   50 minutes).
set -eu
mode=$1 kind=$2 where=$3 line=$4
tag='#runbook-paused:'

read_tab() {
  if [ "$kind" = user ]; then crontab -u "$where" -l 2>/dev/null || true; else cat "$where" 2>/dev/null || true; fi
}

write_tab() {
  if [ "$kind" = user ]; then
    crontab -u "$where" -
  else
    tmp=$(mktemp "$where.runbook-XXXXXX")
    cat > "$tmp"
    chmod --reference="$where" "$tmp"
    chown --reference="$where" "$tmp"
    mv -f "$tmp" "$where"
  fi
}

edit() {  # $1: pause, resume or state
  awk -v mode="$1" -v t="$line" -v tag="$tag" '
    function norm(s,   n, a, i, out) {
      n = split(s, a, /[ \t]+/); out = ""
      for (i = 1; i <= n; i++) if (a[i] != "") out = out (out == "" ? "" : " ") a[i]
      return out
    }
    BEGIN { t = norm(t); p = norm(tag " " t) }
    { n = norm($0) }
    n == t { active = 1 }
    n == p { paused = 1 }
    mode == "pause" && n == t { print tag " " $0; next }
    mode == "resume" && n == p { sub(/^[ \t]*#runbook-paused:[ \t]?/, ""); print; next }
    mode != "state" { print }
    END { if (mode == "state") print (active ? "active" : (paused ? "paused" : "missing")) }'
}

case $mode in
  state) read_tab | edit state ;;
  pause | resume)
    state=$(read_tab | edit state)
    if [ "$state" = missing ]; then echo "cron line not found in $kind $where: $line" >&2; exit 3; fi
    if { [ "$mode" = pause ] && [ "$state" = paused ]; } || { [ "$mode" = resume ] && [ "$state" = active ]; }; then
      exit 0
    fi
    read_tab | edit "$mode" | write_tab ;;
  wait)
    running() {
      crons=$(ps -eo pid=,comm= | awk '$2 == "cron" { printf " %s", $1 }')
      ps -eo ppid=,args= | awk -v c="$line" -v crons="$crons " \
        'index(crons, " " $1 " ") && index($0, c) { found = 1 } END { exit !found }'
    }
    i=0
    while running; do
      i=$((i + 1)); [ "$i" -lt 6000 ] || { echo "a run of '$line' started by cron is still going" >&2; exit 4; }
      sleep 0.5
    done ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
