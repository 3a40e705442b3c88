"""The mail domain's records a move changes, as pure functions: the MX kept as a set, and SPF.

- MX (`switched_mx`): every value keeps its preference; a value whose target is the old host (a
  name whose A/AAAA is the old host's address) is made to point at the mail host; a value that
  points at the mail host already, or anywhere else (a backup MX at a provider), stays as it is.
- SPF (`spf_decision`): the mail domain's `v=spf1` TXT value gets the new host's addresses
  (ip4:NEW, ip6:NEW) right after the term that authorizes the old host, which keeps its
  authorization until the old host is decommissioned. The engine evaluates ip4/ip6 literals
  (with prefix lengths) and `a`/`mx` of names in the zone; it follows no include, exists, ptr,
  redirect or macro, and says so (`Spf.unevaluated`).

No I/O: values and a reader in, values or a decision out (tests/unit/test_maildns.py). The step
that writes SPF is steps/spf.py (mail/spf); the MX is switched by mail/switch-dns (steps/mail.py).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from runbook.dns.values import RRsetValue

Reader = Callable[[str, str], "RRsetValue | None"]
"""(name, rdtype) -> the RRset's value, or None (absent)."""

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- MX ------------------------------------------------------------------------------------------


def mx_target(value: str) -> str:
    """The target of an MX value (`10 mail.club.test.` -> `mail.club.test`; the null MX `0 .` -> '')."""
    parts = value.split()
    return parts[-1].rstrip(".").lower() if len(parts) == 2 else ""


def switched_mx(values: Iterable[str], mail_host: str, on_old_host: Callable[[str], bool]) -> tuple[str, ...]:
    """The MX values after the move, in the order given: a value whose target is on the old host
    (`on_old_host(target)`) points at `mail_host`, with its own preference; the others, and those
    at `mail_host` already, are kept exactly (a backup MX stays the backup). A value that would
    repeat one already there (same preference and target) is one record in DNS: it appears once."""
    host = mail_host.rstrip(".").lower()
    out: list[str] = []
    for value in values:
        target = mx_target(value)
        if target and target != host and on_old_host(target):
            out.append(f"{value.split()[0]} {host}.")
        else:
            out.append(value)
    return tuple(dict.fromkeys(out))


# -- SPF -----------------------------------------------------------------------------------------

SPF_VERSION = "v=spf1"
PASS_QUALIFIERS = ("", "+")
MODIFIER = re.compile(r"^([a-zA-Z][a-zA-Z0-9_.-]*)=(.*)$")


def is_spf(text: str) -> bool:
    """Whether a TXT record's text is an SPF record (`v=spf1`, then a space or nothing)."""
    low = text.lower()
    return low == SPF_VERSION or low.startswith(SPF_VERSION + " ")


@dataclass(frozen=True)
class Term:
    """One term of an SPF record after `v=spf1`: a mechanism (`-ip4:192.0.2.1/24`, `mx`) or a
    modifier (`redirect=_spf.example.net`)."""

    text: str
    qualifier: str = ""
    name: str = ""
    argument: str = ""
    cidr4: int | None = None
    cidr6: int | None = None
    modifier: bool = False
    malformed: bool = False

    @property
    def passes(self) -> bool:
        """A match means pass (qualifier + or none)."""
        return self.qualifier in PASS_QUALIFIERS


def parse_term(text: str) -> Term:
    """One SPF term as written; a term the engine cannot read is `malformed` (never evaluated)."""
    found = MODIFIER.match(text)
    if found:
        return Term(text, name=found.group(1).lower(), argument=found.group(2), modifier=True)
    qualifier = text[0] if text and text[0] in "+-~?" else ""
    body = text[len(qualifier) :]
    name_match = re.match(r"[a-zA-Z0-9]+", body)
    name = name_match.group(0).lower() if name_match else ""
    rest = body[len(name) :]
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            return Term(text, qualifier, name, malformed=True)
        address, slash, length = rest[1:].partition("/")
        if slash and not length.isdigit():
            return Term(text, qualifier, name, address, malformed=True)
        cidr = int(length) if slash else None
        if cidr is not None and cidr > (32 if name == "ip4" else 128):
            return Term(text, qualifier, name, address, malformed=True)
        return Term(
            text, qualifier, name, address, cidr4=cidr if name == "ip4" else None, cidr6=cidr if name == "ip6" else None
        )
    if name in ("a", "mx"):
        domain = ""
        if rest.startswith(":"):
            domain, slash, tail = rest[1:].partition("/")
            rest = slash + tail
        four, _, six = rest.partition("//")
        if (four and not (four.startswith("/") and four[1:].isdigit() and int(four[1:]) <= 32)) or (
            six and not (six.isdigit() and int(six) <= 128)
        ):
            return Term(text, qualifier, name, domain, malformed=True)
        return Term(
            text,
            qualifier,
            name,
            domain.rstrip(".").lower(),
            cidr4=int(four[1:]) if four else None,
            cidr6=int(six) if six else None,
        )
    return Term(text, qualifier, name, rest[1:] if rest.startswith(":") else rest)


@dataclass
class _Resolver:
    """Addresses of `a`/`mx` names, read from the zone; a name outside it, or with a macro, is
    not evaluated."""

    read: Reader
    zone: str
    domain: str
    cache: dict[tuple[str, str], RRsetValue | None] = field(default_factory=dict)

    def evaluable(self, name: str) -> bool:
        return "%" not in name and (name == self.zone or name.endswith("." + self.zone))

    def _read(self, name: str, rdtype: str) -> RRsetValue | None:
        if (name, rdtype) not in self.cache:
            self.cache[(name, rdtype)] = self.read(name, rdtype)
        return self.cache[(name, rdtype)]

    def addresses(self, name: str) -> tuple[list[Address], bool]:
        """The name's A and AAAA addresses, and whether that is all of them (False: not evaluable)."""
        if not self.evaluable(name):
            return [], False
        found: list[Address] = []
        for rdtype in ("A", "AAAA"):
            value = self._read(name, rdtype)
            found += [ipaddress.ip_address(v) for v in (value.values if value else ())]
        return found, True

    def mx_addresses(self, name: str) -> tuple[list[Address], bool]:
        """The addresses of the name's MX targets in the zone, and whether they are all of them
        (a target outside the zone, such as a provider's backup MX, is not resolved)."""
        if not self.evaluable(name):
            return [], False
        found: list[Address] = []
        for target in self.mx_targets(name):
            found += self.addresses(target)[0]
        return found, not self.outside_targets(name)

    def mx_targets(self, name: str) -> list[str]:
        mx = self._read(name, "MX")
        return [t for t in (mx_target(v) for v in (mx.values if mx else ())) if t]

    def outside_targets(self, name: str) -> list[str]:
        return [t for t in self.mx_targets(name) if not self.evaluable(t)]


def unevaluated(term: Term, resolver: _Resolver) -> str | None:
    """How a term the engine does not (fully) evaluate appears in the plan; None for the others."""
    if term.modifier:
        return term.text if term.name == "redirect" else None
    if term.malformed:
        return f"{term.text} (not understood)"
    if term.name in ("ip4", "ip6", "all"):
        return None if matches(term, ipaddress.ip_address("192.0.2.1"), resolver) is not None else term.text
    if term.name in ("a", "mx"):
        name = term.argument or resolver.domain
        if not resolver.evaluable(name):
            return term.text
        outside = resolver.outside_targets(name) if term.name == "mx" else []
        return f"{term.text} (its targets outside the zone: {', '.join(outside)})" if outside else None
    return term.text  # include, exists, ptr, and mechanisms SPF does not know


def _within(address: Address, network_address: Address, term: Term) -> bool:
    if address.version != network_address.version:
        return False
    length = term.cidr4 if address.version == 4 else term.cidr6
    bits = 32 if address.version == 4 else 128
    network = ipaddress.ip_network(f"{network_address}/{bits if length is None else length}", strict=False)
    return address in network


def matches(term: Term, address: Address, resolver: _Resolver) -> bool | None:
    """Whether a mechanism matches the address; None when the engine does not evaluate it."""
    if term.modifier or term.malformed:
        return None
    if term.name == "all":
        return True
    if term.name in ("ip4", "ip6"):
        try:
            literal = ipaddress.ip_address(term.argument)
        except ValueError:
            return None
        if literal.version != (4 if term.name == "ip4" else 6):
            return None
        return _within(address, literal, term)
    if term.name in ("a", "mx"):
        name = term.argument or resolver.domain
        found, complete = resolver.addresses(name) if term.name == "a" else resolver.mx_addresses(name)
        if any(_within(address, a, term) for a in found):
            return True
        return False if complete else None
    return None  # include, exists, ptr, and mechanisms SPF does not know


@dataclass(frozen=True)
class Verdict:
    """What a record says of one address: `pass` (through term `index`), `other` (no pass), or
    `unknown` (a term the engine does not evaluate may decide it)."""

    result: str
    index: int = -1


def authorization(terms: Sequence[Term], address: Address, resolver: _Resolver) -> Verdict:
    """The first matching mechanism decides (RFC 7208 4.6.2). A term the engine cannot evaluate
    with a pass qualifier can only add a pass (include matches only when its record passes), so a
    later pass still counts; one with another qualifier makes any later verdict unknown."""
    maybe_pass = maybe_other = False
    for index, term in enumerate(terms):
        if term.modifier:
            continue
        hit = matches(term, address, resolver)
        if hit is None:
            maybe_pass |= term.passes
            maybe_other |= not term.passes
            continue
        if hit:
            if term.passes:
                return Verdict("unknown" if maybe_other else "pass", index)
            return Verdict("unknown" if maybe_pass else "other", index)
    redirect = any(t.modifier and t.name == "redirect" for t in terms)
    return Verdict("unknown" if maybe_pass or redirect else "other")


@dataclass(frozen=True)
class Spf:
    """The decision on one SPF record.

    `state`: `done` (every new address passes already), `add` (`record` is the new text),
    `not-old` (the old host does not pass through anything the engine evaluates: left alone).
    `old_terms` are the terms through which the old host passes, `new_terms` those through which
    the new host passes already, `added` the terms put in, `unevaluated` the terms the engine
    did not evaluate."""

    state: str
    text: str
    record: str | None = None
    old_terms: tuple[str, ...] = ()
    new_terms: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    unevaluated: tuple[str, ...] = field(default=())


def _addresses(values: Iterable[str]) -> list[tuple[str, Address]]:
    """(text as given, address) of each distinct address; the text is what goes into the record
    (dnspython's form of an IPv4-mapped IPv6 address, as the inventory gives it)."""
    out: dict[Address, str] = {}
    for value in values:
        try:
            out.setdefault(ipaddress.ip_address(value), value)
        except ValueError:
            continue  # an unresolved host name (the inventory's checks name it)
    return [(text, address) for address, text in out.items()]


def _anchor(terms: Sequence[Term], address: Address, verdict: Verdict, resolver: _Resolver) -> int:
    """Where the new host's address goes: after the old host's ip4/ip6 literal when there is one
    (before any `all`), so that removing it at decommission leaves the new one in its place; else
    after the term through which the old host passes."""
    for index, term in enumerate(terms):
        if term.name == "all" and not term.modifier:
            break
        if term.name in ("ip4", "ip6") and term.passes and matches(term, address, resolver):
            return index
    return verdict.index


def spf_decision(text: str, old: Iterable[str], new: Iterable[str], read: Reader, zone: str, domain: str) -> Spf:
    """What to do with the SPF record `text` at `domain` so that the new host's addresses `new`
    pass where the old host's `old` do. Each new address that does not pass yet is added as
    ip4:NEW / ip6:NEW right after the term through which the old host's address of the same
    family passes, preferring its ip4/ip6 literal (else after the first term through which the old
    host passes), with that term's qualifier; nothing is removed."""
    words = text.split()
    terms = [parse_term(w) for w in words[1:]]
    resolver = _Resolver(read, zone.rstrip(".").lower(), domain.rstrip(".").lower())
    skipped = tuple(text for text in (unevaluated(t, resolver) for t in terms) if text is not None)
    old_passing = [(a, v) for _, a in _addresses(old) if (v := authorization(terms, a, resolver)).result == "pass"]
    new_verdicts = [(t, a, authorization(terms, a, resolver)) for t, a in _addresses(new)]
    new_terms = tuple(dict.fromkeys(terms[v.index].text for _, _, v in new_verdicts if v.result == "pass"))
    old_terms = tuple(dict.fromkeys(terms[v.index].text for _, v in old_passing))
    missing = [(t, a) for t, a, v in new_verdicts if v.result != "pass"]
    if not missing:
        return Spf("done", text, old_terms=old_terms, new_terms=new_terms, unevaluated=skipped)
    if not old_passing:
        return Spf("not-old", text, new_terms=new_terms, unevaluated=skipped)
    inserts: dict[int, list[str]] = {}
    added: list[str] = []
    for literal, address in missing:
        same_family = [_anchor(terms, a, v, resolver) for a, v in old_passing if a.version == address.version]
        after = same_family[0] if same_family else _anchor(terms, *old_passing[0], resolver)
        qualifier = "+" if terms[after].qualifier == "+" else ""
        mechanism = f"{qualifier}ip{address.version}:{literal}"
        inserts.setdefault(after, []).append(mechanism)
        added.append(mechanism)
    out = [words[0]]
    for index, written in enumerate(terms):
        out.append(written.text)
        out += inserts.get(index, [])
    return Spf(
        "add",
        text,
        " ".join(out),
        old_terms=old_terms,
        new_terms=new_terms,
        added=tuple(added),
        unevaluated=skipped,
    )
