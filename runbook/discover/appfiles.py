"""What discover reads from the applications' own files: the database host their configuration
names (wp-config.php, config.php), and where Varnish sends its requests (varnishd's arguments and
its VCL). Plain parsing of discover.sh's records (runbook/discover/scan.py), no I/O.

Of a configuration file only its database-host lines travel (discover.sh greps them), and only the
host is kept: never a password, even one on the same line.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

#: A database host that means "this machine": it becomes the project's db service on the new host.
_LOCAL = r"(?:localhost|127\.0\.0\.1)(?::[^'\"\s]*)?"
_VALUE = rf"(?P<value>(?P<vq>['\"]){_LOCAL}(?P=vq))"
DB_HOST_PATTERNS = (
    # wp-config.php: define( 'DB_HOST', 'localhost' );
    re.compile(rf"define\(\s*(?P<kq>['\"])(?P<key>DB_HOST)(?P=kq)\s*,\s*{_VALUE}\s*\)", re.I),
    # config.php: 'db_host' => 'localhost' (also Nextcloud's 'dbhost')
    re.compile(rf"(?P<kq>['\"])(?P<key>db_?host)(?P=kq)\s*=>\s*{_VALUE}", re.I),
    # config.php: $db_host = 'localhost';
    re.compile(rf"(?P<key>\$db_?host)\s*=\s*{_VALUE}", re.I),
)
COMMENT = re.compile(r"^\s*(//|#|/?\*)")


@dataclass
class ConfigFile:
    """An application's configuration file, and the local database host it names, as it spells it
    (quotes included: `'localhost'`), with the key that holds it (DB_HOST)."""

    path: str
    db_host: str | None = None
    key: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] or "/"


def config_file(path: str, lines: str) -> ConfigFile:
    """A config file from its database-host lines (grep's output); commented lines do not count."""
    found = ConfigFile(path)
    for line in lines.splitlines():
        if COMMENT.match(line):
            continue
        for pattern in DB_HOST_PATTERNS:
            match = pattern.search(line)
            if match:
                found.db_host, found.key = match.group("value"), match.group("key")
                return found
    return found


def db_host_replacement(spelled: str) -> str:
    """What a local database host becomes on the new host: the project's db service, in the same
    quotes (on its default port: the old host's port or socket does not carry over)."""
    return f"{spelled[0]}db{spelled[0]}"


_BACKEND = re.compile(r"\bbackend\s+[\w-]+\s*\{(?P<body>[^{}]*)\}", re.S)
_HOST = re.compile(r"\.host\s*=\s*\"(?P<host>[^\"]+)\"")
_PORT = re.compile(r"\.port\s*=\s*\"?(?P<port>[\w-]+)\"?")
DEFAULT_VCL = "/etc/varnish/default.vcl"


def vcl_backends(text: str) -> list[str]:
    """host:port of each backend a VCL declares (port 80 when it names none)."""
    text = re.sub(r"(?m)(#|//).*$", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))
    out = []
    for block in _BACKEND.finditer(text):
        host, port = _HOST.search(block.group("body")), _PORT.search(block.group("body"))
        if host:
            address = host.group("host")
            out.append(f"{address}:{port.group('port') if port else '80'}")
    return out


def _option(argv: list[str], flag: str) -> str | None:
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(flag) and len(word) > len(flag):
            return word[len(flag) :]
    return None


def varnish_backends(processes: list[str], vcls: dict[str, str]) -> list[str]:
    """host:port where Varnish sends requests: each running varnishd's `-b`, else the backends of
    the VCL it loads (`-f`, by default /etc/varnish/default.vcl); with no varnishd running, the
    backends of every VCL read."""
    out: list[str] = []
    for args in processes:
        try:
            argv = shlex.split(args)
        except ValueError:
            argv = args.split()
        backend = _option(argv, "-b")
        if backend:
            out.append(backend if re.search(r":\w+$", backend) and not backend.endswith("]") else f"{backend}:80")
        else:
            out += vcl_backends(vcls.get(_option(argv, "-f") or DEFAULT_VCL, ""))
    if not processes:
        for text in vcls.values():
            out += vcl_backends(text)
    return list(dict.fromkeys(out))


def port_of(address: str) -> int | None:
    """The port of host:port ([v6]:port too), None when it is a name or missing."""
    port = address.rsplit(":", 1)[-1] if ":" in address else ""
    return int(port) if port.isdigit() else None
