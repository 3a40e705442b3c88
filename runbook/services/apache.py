"""Apache on the old host: which file and line hold a name's vhost (`apache2ctl -S`), and the
frozen form of a vhost, a reverse proxy to the new host that keeps names, logs and TLS."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NAMEVHOST = re.compile(r"^\s*(?:port (\d+) namevhost|default server) (\S+) \((.+):(\d+)\)\s*$")
ALIAS = re.compile(r"^\s+alias (\S+)\s*$")
ADDRESS = re.compile(r"^(\S+):(\d+)\s+(?:is a NameVirtualHost|\S+ \((.+):(\d+)\))")
KEEP = re.compile(
    r"^\s*(ServerName|ServerAlias|ErrorLog|CustomLog|LogLevel|SSLEngine|SSLCertificate\w*|SSLProtocol|"
    r"SSLCipherSuite|SSLHonorCipherOrder|SSLSessionTickets|SSLOptions|Protocols|"
    # certbot's TLS settings, and an HSTS header the site's clients already cache
    r"Include\s+\S*letsencrypt\S*|Header\s+always\s+set\s+Strict-Transport-Security)\b",
    re.I,
)
#: A vhost that only sends clients to https (certbot's RewriteRule, or a Redirect): left as it is.
HTTPS_REDIRECT = re.compile(
    r"^\s*(RewriteRule\s+\S+\s+https://\S*\s+\[[^]]*\bR\b[^]]*\]|RewriteRule\s+\S+\s+https://\S*\s+\[[^]]*R=\w+[^]]*\]"
    r"|Redirect(Permanent|Match)?\s+(\S+\s+)?\S+\s+https://)",
    re.I,
)
FROZEN_MARK = "# runbook freeze:"


@dataclass
class VhostRef:
    """Where a vhost is defined."""

    name: str
    port: int
    file: str
    line: int
    aliases: list[str] = field(default_factory=list)


def parse_vhosts(output: str) -> list[VhostRef]:
    """Parse `apache2ctl -S` into vhost references (name-based and address-only ones)."""
    refs: list[VhostRef] = []
    port = 0
    seen: set[tuple[str, int]] = set()
    for line in output.splitlines():
        address = ADDRESS.match(line)
        if address:
            port = int(address.group(2))
            if address.group(3):
                name = line.split()[1]
                key = (address.group(3), int(address.group(4)))
                if key not in seen:
                    seen.add(key)
                    refs.append(VhostRef(name, port, address.group(3), int(address.group(4))))
            continue
        match = NAMEVHOST.match(line)
        if match:
            key = (match.group(3), int(match.group(4)))
            if key in seen:
                continue
            seen.add(key)
            refs.append(VhostRef(match.group(2), int(match.group(1) or port), match.group(3), int(match.group(4))))
            continue
        alias = ALIAS.match(line)
        if alias and refs:
            refs[-1].aliases.append(alias.group(1))
    return refs


def pid_file(output: str) -> str:
    """The main process's PID file, from `apache2ctl -S` (its `PidFile: "..."` line); '' when
    the output names none (apache-graceful.sh then asks apache2ctl itself)."""
    match = re.search(r'^PidFile: "(.*)"$', output, re.MULTILINE)
    return match.group(1) if match else ""


def vhosts_for(refs: list[VhostRef], domains: tuple[str, ...]) -> list[VhostRef]:
    """The vhosts that answer for any of these names."""
    wanted = {d.lower() for d in domains}
    return [r for r in refs if {r.name.lower(), *(a.lower() for a in r.aliases)} & wanted]


def block_at(text: str, line: int) -> tuple[int, int]:
    """The 0-based [start, end] line indexes of the <VirtualHost> block that starts at `line`."""
    lines = text.splitlines()
    start = line - 1
    if start >= len(lines) or not lines[start].lstrip().lower().startswith("<virtualhost"):
        raise ValueError(f"line {line} does not open a <VirtualHost> block")
    for index in range(start + 1, len(lines)):
        if lines[index].strip().lower() == "</virtualhost>":
            return start, index
    raise ValueError(f"the <VirtualHost> block at line {line} is not closed")


def frozen_block(block: list[str], target: str, tls: bool, ca_file: str | None) -> list[str]:
    """The block as a reverse proxy to `target` (scheme://address), Host header preserved.

    Names, logs and TLS settings stay, so clients and log readers see no difference."""
    indent = "    "
    kept = [line for line in block[1:-1] if KEEP.match(line)]
    proxy = [
        f"{indent}{FROZEN_MARK} this site now lives on the new host; this copy is no longer written.",
        f"{indent}ProxyPreserveHost On",
        f'{indent}RequestHeader set X-Forwarded-Proto "{"https" if tls else "http"}"',
    ]
    if target.startswith("https://"):
        proxy += [
            f"{indent}SSLProxyEngine On",
            f"{indent}SSLProxyVerify require",
            f"{indent}SSLProxyVerifyDepth 5",
            f"{indent}SSLProxyCheckPeerName On",
        ]
        if ca_file:
            proxy.append(f"{indent}SSLProxyCACertificateFile {ca_file}")
    proxy += [f"{indent}ProxyPass / {target}/", f"{indent}ProxyPassReverse / {target}/"]
    return [block[0], *kept, *proxy, block[-1]]


def redirects_to_https(block: list[str]) -> bool:
    """True for a vhost whose requests all go to https (certbot's port-80 vhost): it keeps
    redirecting during and after the freeze, and the https vhost it sends clients to is frozen."""
    return any(HTTPS_REDIRECT.match(line) for line in block)


def freeze_text(text: str, lines: list[int], target: str, ca_file: str | None) -> str:
    """The file with each listed vhost block frozen (a proxy to target). Others stay as they are,
    and so do blocks that only redirect to https."""
    out = text.splitlines()
    for line in sorted(lines, reverse=True):
        start, end = block_at("\n".join(out), line)
        block = out[start : end + 1]
        if any(FROZEN_MARK in b for b in block) or redirects_to_https(block):
            continue
        # certbot's vhosts say SSLEngine on in the options file they include, not in the block
        tls = any(re.match(r"^\s*(SSLEngine\s+on|SSLCertificateFile\s)", b, re.I) for b in block)
        out[start : end + 1] = frozen_block(block, target, tls, ca_file)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def is_frozen(text: str, line: int) -> bool:
    start, end = block_at(text, line)
    return any(FROZEN_MARK in b for b in text.splitlines()[start : end + 1])
