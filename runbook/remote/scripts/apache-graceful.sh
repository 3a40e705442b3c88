# shellcheck shell=sh
# graceful SECONDS [PIDFILE], on the old host as root (ApacheSource.freeze_actions): `apache2ctl
# graceful`, then wait until every child Apache had before it has exited, at most SECONDS. PIDFILE
# is the main process's (`apache2ctl -S` names it; the freeze reads that before it holds any
# request): without it, it is asked for here, at the cost of one more parse of the configuration.
#
# A graceful restart lets each old child finish what it is doing under the old configuration: an
# idle one exits at once, a busy one after its request, and one waiting on a keep-alive connection
# serves that connection's next request (if one comes before KeepAliveTimeout) the old way, then
# exits. Until the last has gone, the old copy can still be written to; after, every request goes
# through the new configuration (the proxy). Waiting for exactly that replaces a fixed sleep: it
# is as short as the old children allow, and as long as they need. It prints how long it waited.
set -eu
limit=$1
pidfile=${2:-$(apache2ctl -t -D DUMP_RUN_CFG 2>/dev/null | sed -n 's/^PidFile: "\(.*\)"$/\1/p')}
parent=$(cat "$pidfile" 2>/dev/null || true)
# The children of the old configuration still running: those of Apache's children now whose PIDs
# were noted before the reload.
old() { if [ -n "$before" ]; then ps -o pid= --ppid "$parent" | tr -d ' ' | grep -xF "$before" || true; fi; }
before=
if [ -n "$parent" ]; then before=$(ps -o pid= --ppid "$parent" | tr -d ' ' || true); fi
apache2ctl graceful
start=$(date +%s%N)
ms() { echo $((($(date +%s%N) - start) / 1000000)); }
while left=$(old) && [ -n "$left" ]; do
  if [ "$(ms)" -ge $((limit * 1000)) ]; then
    echo "apache: $(echo "$left" | wc -l) child(ren) of the old configuration still running after ${limit} s: $(echo "$left" | tr "\n" " ")" >&2
    exit 1
  fi
  sleep 0.05
done
echo "apache: reloaded; the old configuration's $(echo "$before" | grep -c .) child(ren) gone after $(ms) ms"
