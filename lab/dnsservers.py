"""DNS of the lab: a BIND primary (TSIG updates), a secondary (NOTIFY/IXFR) and unbound."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import dns.zone

from lab import dkim, proc
from lab.proc import LabError
from lab.render import TEMPLATES, render, write, write_template
from lab.topology import NS1, NS2, OLD, OLD6, PDNS, PDNS_ZONE, RESOLVER, TSIG_NAME, VARIANTS, XFER_NAME, ZONE, Paths

SERVERS = {"named-primary": NS1, "named-secondary": NS2}


def _secret(path: Path) -> str:
    """A base64 HMAC-SHA256 secret kept in ``path`` (0600), made once."""
    if not path.exists():
        write(path, base64.b64encode(os.urandom(32)).decode() + "\n", 0o600)
    path.chmod(0o600)
    return path.read_text().strip()


def soa_serial(server: str, timeout: float = 1.0) -> int | None:
    """SOA serial of the lab zone at ``server`` (None if it does not answer authoritatively)."""
    try:
        resp = dns.query.udp(dns.message.make_query(ZONE, dns.rdatatype.SOA), server, timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "no serial"
        return None
    for rrset in resp.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


def _next_serial(paths: Paths) -> int:
    """A serial higher than any the lab handed out before (and than the primary's current one)."""
    store = paths.state / "serial"
    last = int(store.read_text()) if store.exists() else 0
    current = soa_serial(NS1) or 0
    serial = max(last, current, 1000) + 1
    write(store, f"{serial}\n")
    return serial


def write_zone(paths: Paths, variant: str) -> None:
    """Write the pristine zone file of ``variant`` with a fresh serial into the primary's folder."""
    if variant not in VARIANTS:
        raise proc.LabError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    write(paths.dns / "primary" / f"{ZONE}.zone", zone_text(paths, variant, _next_serial(paths)))
    write(paths.state / "variant", variant + "\n")
    write(paths.state / "zone-template", template_digest(paths) + "\n")


def zone_text(paths: Paths, variant: str, serial: int) -> str:
    """The pristine zone file of ``variant`` with ``serial``: the old host's addresses, its SPF
    record and the public half of its DKIM key (lab/dkim.py; the key is made if missing)."""
    ttl = VARIANTS[variant]
    return render(
        "club.test.zone",
        zone=ZONE,
        variant=variant,
        ttl=ttl,
        minimum=min(ttl, 300) if ttl > 10 else 5,
        serial=serial,
        old=OLD,
        old6=OLD6,
        ns1=NS1,
        ns2=NS2,
        dkim_selector=dkim.SELECTOR,
        dkim_txt=dkim.zone_record(paths),
    )


def template_digest(paths: Paths) -> str:
    """Names the zone template's text and the DKIM key it publishes: a lab whose live zone came
    from another one (a lab made before a site was added) gets the pristine zone again at `lab.up`."""
    text = (TEMPLATES / "club.test.zone").read_bytes() + dkim.zone_record(paths).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def zone_outdated(paths: Paths) -> bool:
    """Whether the live zone was written from an older zone template (or DKIM key)."""
    f = paths.state / "zone-template"
    return not f.exists() or f.read_text().strip() != template_digest(paths)


def prepare(paths: Paths, variant: str) -> None:
    """Keys, named and unbound configs; the zone file if the primary has none yet."""
    d = paths.dns
    tsig = _secret(paths.tsig_secret)
    keys = write_template(
        d / "keys.conf",
        "keys.conf",
        0o600,
        tsig=TSIG_NAME,
        xfer=XFER_NAME,
        tsig_secret=tsig,
        xfer_secret=_secret(d / "xfer.secret"),
        rndc_secret=_secret(d / "rndc.secret"),
    )
    write_template(d / "rndc.conf", "rndc.conf", 0o600, rndc_secret=_secret(d / "rndc.secret"))
    common: dict[str, object] = {
        "keys": keys,
        "zone": ZONE,
        "ns1": NS1,
        "ns2": NS2,
        "tsig": TSIG_NAME,
        "xfer": XFER_NAME,
    }
    for role in ("primary", "secondary"):
        (d / role).mkdir(parents=True, exist_ok=True)
        write_template(
            d / f"named-{role}.conf",
            f"named-{role}.conf",
            0o644,
            **{**common, "dir": d / role, "log": paths.log(f"named-{role}")},
        )
    if not (d / "primary" / f"{ZONE}.zone").exists():
        write_zone(paths, variant)
    (d / "unbound").mkdir(parents=True, exist_ok=True)
    write_template(
        d / "unbound.conf",
        "unbound.conf",
        dir=d / "unbound",
        resolver=RESOLVER,
        log=paths.log("unbound"),
        zone=ZONE,
        ns1=NS1,
        ns2=NS2,
        pdns=PDNS,
        pdns_zone=PDNS_ZONE,
    )


def start_named(paths: Paths, role: str) -> int:
    """Start one named in the foreground; wait until it answers the SOA."""
    name = f"named-{role}"
    paths.logs.mkdir(parents=True, exist_ok=True)
    pid = proc.start(
        ["named", "-f", "-4", "-c", str(paths.dns / f"{name}.conf")],
        pidfile=paths.pid(name),
        log=paths.log(name + "-stderr"),
    )
    addr = SERVERS[name]
    proc.wait_until(lambda: soa_serial(addr, 0.2) is not None, 15, f"{name} ({addr}:53)", paths.log(name))
    return pid


def start_unbound(paths: Paths) -> int:
    """Start unbound in the foreground; wait until it resolves the lab zone."""
    pid = proc.start(
        ["unbound", "-d", "-c", str(paths.dns / "unbound.conf")],
        pidfile=paths.pid("unbound"),
        log=paths.log("unbound-stderr"),
    )
    proc.wait_until(lambda: resolve(ZONE, "A") is not None, 10, f"unbound ({RESOLVER}:53)", paths.log("unbound"))
    return pid


def resolve(name: str, rdtype: str, server: str = RESOLVER) -> list[str] | None:
    """Answer of ``server`` (by default the resolver) for name/type, None on error/timeout."""
    try:
        q = dns.message.make_query(name, rdtype, want_dnssec=False)
        q.flags |= dns.flags.RD
        resp = dns.query.udp(q, server, timeout=0.5)
    except Exception:  # noqa: BLE001
        return None
    if resp.rcode() != 0:
        return None
    return [rd.to_text() for rrset in resp.answer for rd in rrset]


def rndc(paths: Paths, server: str, *args: str) -> str:
    """Run rndc against one named (``server`` = its address)."""
    return proc.run(["rndc", "-c", str(paths.dns / "rndc.conf"), "-s", server, *args]).stdout


def reload_pristine_zone(paths: Paths, variant: str | None = None) -> int:
    """Replace the live zone by the pristine one with a fresh serial; wait for the secondary."""
    variant = variant or _variant(paths)
    zone_file = paths.dns / "primary" / f"{ZONE}.zone"
    rndc(paths, NS1, "freeze", ZONE)
    try:
        # `rndc freeze` answers before named has written the journal's changes into the zone
        # file: that dump runs on its own and, landing after our write, put the live zone back
        # over the pristine one ("ixfr-from-differences: unchanged" at thaw). Wait for it: named
        # dumps to a temporary file and renames, so the file holds the served serial once done.
        served = soa_serial(NS1)
        proc.wait_until(
            lambda: served is None or _file_serial(zone_file) == served,
            10,
            f"named's dump of zone {ZONE} (serial {served}) after rndc freeze",
            paths.log("named-primary"),
        )
        write_zone(paths, variant)
        for jnl in (paths.dns / "primary").glob(f"{ZONE}.zone.jnl"):
            jnl.unlink()
    finally:
        rndc(paths, NS1, "thaw", ZONE)
    serial = int((paths.state / "serial").read_text())
    for server in (NS1, NS2):
        proc.wait_until(
            lambda s=server: (soa_serial(s, 0.3) or 0) >= serial,
            10,
            f"zone {ZONE} serial {serial} at {server}",
            paths.log("named-primary" if server == NS1 else "named-secondary"),
        )
    return serial


def _file_serial(path: Path) -> int | None:
    """The SOA serial written in a zone file (named's own dump or the lab's template)."""
    try:
        zone = dns.zone.from_file(str(path), origin=ZONE, relativize=False, check_origin=False)
        return int(zone.get_soa().serial)
    except Exception:  # noqa: BLE001 - a file named has not finished is "no serial yet"
        return None


def _variant(paths: Paths) -> str:
    f = paths.state / "variant"
    return f.read_text().strip() if f.exists() else "fast"


def flush_resolver(paths: Paths) -> None:
    """Flush unbound's cache (whole cache: lab zone and negative answers)."""
    proc.run(["unbound-control", "-c", str(paths.dns / "unbound.conf"), "flush_zone", "."])
    proc.run(["unbound-control", "-c", str(paths.dns / "unbound.conf"), "flush_infra", "all"])
    proc.run(["unbound-control", "-c", str(paths.dns / "unbound.conf"), "flush_requestlist"])


def wait_secondary(paths: Paths, timeout: float = 10) -> None:
    """Wait until the secondary serves the primary's serial. A secondary that restarts with an old
    copy of the zone may wait for its refresh timer: it is asked to refresh now and then."""
    nudged = [0.0]

    def in_sync() -> bool:
        primary, secondary = soa_serial(NS1), soa_serial(NS2)
        if primary is not None and primary == secondary:
            return True
        if time.monotonic() - nudged[0] > 1.5:
            nudged[0] = time.monotonic()
            with contextlib.suppress(LabError):  # its control channel may not be up yet
                rndc(paths, NS2, "refresh", ZONE)
        return False

    proc.wait_until(
        in_sync,
        timeout,
        "secondary named in sync with the primary",
        paths.log("named-secondary"),
    )
