"""drain.sh, the compose source's wait before its freeze (runbook/services/composesource.py), on a
real HTTP server in a network namespace of its own: keep-alive connections left idle do not hold
it up, a request in progress does, until its answer is out or the wait's limit is reached."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runbook.remote.scripts import script

SERVER = r"""
import http.server, socket, sys, threading, time
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(2)
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok"); self.wfile.flush()
        if self.path == "/slow":
            with open(sys.argv[1], "a") as done:
                done.write("slow-done\n")
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 8080), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
idle = socket.create_connection(("127.0.0.1", 8080))  # a keep-alive connection, answered, then idle
idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); idle.recv(100)
time.sleep(0.3)
print("idle-ready", flush=True)
held = []
for line in sys.stdin:
    slow = socket.create_connection(("127.0.0.1", 8080))
    slow.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    held.append(slow)
    time.sleep(0.1)
    print("slow-started", flush=True)
"""

# Root, unshare/nsenter (util-linux) and ss/ip (iproute2), as the lab: scripts/install.sh installs them.


def wait_for(proc: subprocess.Popen[str], word: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    while word not in seen:
        line = proc.stdout.readline()
        assert line, f"the server ended before {word!r}: {seen}"
        seen.append(line.strip())


def test_drain_waits_for_a_request_in_progress_and_not_for_idle_keep_alive(tmp_path: Path) -> None:
    done = tmp_path / "answered"  # the server appends a line as each slow answer is out
    done.touch()
    server = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1" "$2"', sys.executable, SERVER, str(done)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        seen: list[str] = []
        wait_for(server, "idle-ready", seen)
        docker = tmp_path / "docker"  # `docker inspect -f {{.State.Pid}} app`: the server's PID
        docker.write_text(f"#!/bin/sh\necho {server.pid}\n")
        docker.chmod(0o755)
        env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}

        def drain(limit: int) -> subprocess.CompletedProcess[str]:
            argv = ["sh", "-c", script("drain.sh"), "drain", str(limit), "app"]
            return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)

        idle = drain(30)
        assert idle.returncode == 0 and idle.stdout.startswith("drained in"), idle
        assert server.stdin is not None
        server.stdin.write("slow\n")
        server.stdin.flush()
        wait_for(server, "slow-started", seen)
        cut = drain(1)  # the answer takes 2 s: the limit comes first
        assert cut.returncode == 0 and "still busy after 1s, frozen anyway: 127.0.0.1:8080 <- " in cut.stderr, cut
        assert done.read_text() == ""
        server.stdin.write("slow\n")
        server.stdin.flush()
        wait_for(server, "slow-started", seen)
        waited = drain(30)
        assert waited.returncode == 0 and waited.stdout.startswith("drained in"), waited
        # both slow answers were out before the drain ended
        assert done.read_text() == "slow-done\n" * 2
    finally:
        server.kill()
        server.wait()


def test_drain_fails_naming_the_container_whose_connections_it_cannot_read(tmp_path: Path) -> None:
    docker = tmp_path / "docker"  # a PID no process has: no namespace to enter
    docker.write_text("#!/bin/sh\necho 2147483646\n")
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    argv = ["sh", "-c", script("drain.sh"), "drain", "5", "shop_app"]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 1 and "drain: cannot read shop_app's connections" in result.stderr, result
