# shellcheck shell=sh
# shellcheck disable=SC2154  # file and thawed: set by freeze_file (cgroup-freeze.sh, prepended)
# A host's facts as key=value lines, on stdin to `sh -s -- FILE...` (runbook/remote/facts.py), after the
# settings CONTAINERS (names, checked), HOLD and CONTENT (a size limit) and cgroup-freeze.sh:
# docker=, compose=, network.web=, container.NAME=STATE/HEALTH, hold.NAME=held|serving|missing,
# file.PATH=SHA256 MODE (empty when missing), content.PATH=BASE64.

v=$(docker version --format '{{.Server.Version}}' 2>/dev/null) && echo "docker=$v" || echo "docker="
if docker compose version >/dev/null 2>&1; then echo compose=v2
elif command -v docker-compose >/dev/null 2>&1; then echo compose=v1; else echo compose=; fi
docker network inspect web >/dev/null 2>&1 && echo network.web=yes || echo network.web=no

if [ -n "$CONTAINERS" ]; then
  fmt='{{.Name}} {{.State.Pid}} {{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}'
  # shellcheck disable=SC2086  # CONTAINERS: container names (checked), split into words on purpose
  docker inspect --type container -f "$fmt" $CONTAINERS 2>/dev/null | while read -r name pid state; do
    name=${name#/}
    echo "container.$name=$state"
    [ -n "$HOLD" ] || continue
    if [ "$pid" = 0 ]; then echo "hold.$name=missing"; continue; fi
    freeze_file "$pid"
    if [ "$(cat "$file" 2>/dev/null)" = "$thawed" ]; then echo "hold.$name=serving"; else echo "hold.$name=held"; fi
  done
fi
for f in "$@"; do
  if [ -e "$f" ]; then
    echo "file.$f=$(sha256sum < "$f" | cut -c1-64) $(stat -c %a "$f")"
    if [ -n "$CONTENT" ] && [ -f "$f" ] && [ "$(stat -c %s "$f")" -le "$CONTENT" ]; then
      echo "content.$f=$(base64 -w0 < "$f")"
    fi
  else echo "file.$f="; fi
done
