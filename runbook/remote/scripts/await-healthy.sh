# shellcheck shell=sh
# healthy CONTAINER, on the new host (steps/relay.py): wait at most 60 s until its health check passes.
tries=0
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null)" = healthy ]; do
  tries=$((tries + 1))
  if [ "$tries" -ge 600 ]; then echo "container $1 is not healthy after 60 s" >&2; exit 1; fi
  sleep 0.1
done
