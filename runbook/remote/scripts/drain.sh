# shellcheck shell=sh
# drain TIMEOUT CONTAINER... (the source host, as root; runbook/services/composesource.py): wait
# until none of the containers is in the middle of a request, at most TIMEOUT seconds, before the
# freeze stops them. Their connections are read in their network namespace (`ss -tni`, iproute2,
# through nsenter): a connection to one of the container's listening ports is busy while it has
# data queued, while it has received but never sent (the first request, not answered yet), while
# its last receive is newer than its last send (a later request), or while it sent in the last
# 200 ms (an answer still streaming). ss counts in ms: a request that came in the same ms as the
# answer before it, on the same connection, looks idle once that answer is 200 ms old. Keep-alive
# connections Traefik holds idle are not busy. Prints `drained in S s` or, after TIMEOUT, names the
# connections still busy on stderr and ends 0: the freeze goes on as before this wait existed.
set -u
timeout=$1
shift
started=$(date +%s)
busy() {
  # $1: the container's PID, $2 its listening ports (",80,9000,"). Prints each busy connection.
  nsenter -t "$1" -n ss -Htni state established | awk -v ports="$2" '
    /^[0-9]/ {
      n = split($3, a, ":"); mine = index(ports, "," a[n] ",") > 0
      queued = ($1 > 0 || $2 > 0); conn = $3 " <- " $4; next
    }
    mine {
      snd = 0; rcv = 0; sent = 0; got = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^lastsnd:/) { sub(/^lastsnd:/, "", $i); snd = $i + 0 }
        if ($i ~ /^lastrcv:/) { sub(/^lastrcv:/, "", $i); rcv = $i + 0 }
        if ($i ~ /^bytes_sent:/) sent = 1
        if ($i ~ /^bytes_received:/) got = 1
      }
      if (queued || (got && !sent) || rcv < snd || (sent && snd < 200))
        print conn " (lastsnd " snd " ms, lastrcv " rcv " ms)"
      mine = 0
    }'
}
for tool in nsenter ss; do
  command -v "$tool" >/dev/null || { echo "drain: $tool is not on this host (util-linux, iproute2)" >&2; exit 1; }
done
# each container's PID and listening ports, read once: "PID/,80,9000," per container
targets=""
for container do
  pid=$(docker inspect -f '{{.State.Pid}}' "$container") || exit 1
  # a namespace it cannot enter would read as no connection at all: fail instead
  listening=$(nsenter -t "$pid" -n ss -Htln state listening) ||
    { echo "drain: cannot read $container's connections" >&2; exit 1; }
  ports=$(echo "$listening" | awk '{ n = split($3, a, ":"); printf ",%s", a[n] } END { printf "," }')
  targets="$targets $pid/$ports"
done
while :; do
  left=""
  for target in $targets; do
    left="$left$(busy "${target%%/*}" "${target#*/}")"
  done
  if [ -z "$left" ]; then
    echo "drained in $(($(date +%s) - started)) s"
    exit 0
  fi
  if [ $(($(date +%s) - started)) -ge "$timeout" ]; then
    echo "still busy after ${timeout}s, frozen anyway: $left" >&2
    exit 0
  fi
  sleep 0.05
done
