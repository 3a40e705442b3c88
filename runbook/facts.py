"""Facts about a host in one round trip: a small script whose key=value output is parsed."""

from __future__ import annotations

from runbook.hosts import Host

FACTS_SCRIPT = r"""
v=$(docker version --format '{{.Server.Version}}' 2>/dev/null) && echo "docker=$v" || echo "docker="
if docker compose version >/dev/null 2>&1; then echo compose=v2
elif command -v docker-compose >/dev/null 2>&1; then echo compose=v1; else echo compose=; fi
docker network inspect web >/dev/null 2>&1 && echo network.web=yes || echo network.web=no
for c in $CONTAINERS; do
  state='{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}'
  echo "container.$c=$(docker inspect -f "$state" "$c" 2>/dev/null)"
done
for f in "$@"; do
  if [ -e "$f" ]; then echo "file.$f=$(sha256sum < "$f" | cut -c1-64) $(stat -c %a "$f")"; else echo "file.$f="; fi
done
"""


def host_facts(host: Host, files: list[str] | None = None, containers: list[str] | None = None) -> dict[str, str]:
    """docker version, compose flavour, the web network, containers' states, files' sha256 and mode."""
    names = " ".join(containers or [])
    script = (
        f"CONTAINERS='{names}'\n{FACTS_SCRIPT}"
        if all(c.replace("_", "").replace("-", "").isalnum() for c in containers or [])
        else FACTS_SCRIPT
    )
    result = host.run_script(script, files or [])
    facts: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key] = value
    return facts


def compose_argv(flavour: str, project_dir: str, project: str, *args: str) -> tuple[str, ...]:
    """The compose command for the host's flavour (v2 plugin or v1 docker-compose)."""
    base = ("docker", "compose") if flavour == "v2" else ("docker-compose",)
    return (*base, "--project-directory", project_dir, "-f", f"{project_dir}/docker-compose.yml", "-p", project, *args)
