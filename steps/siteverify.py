"""A site's verification sub-steps: before any DNS change, the new host answers like the old one
(verify-new); after the switch, clients reach the new host through their resolver (verify-live).
They only read."""

from __future__ import annotations

from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.remote.http import (
    Response,
    acme_context,
    describe_visit,
    request,
    unverified_context,
    visit,
)
from runbook.remote.reads import Reads
from runbook.specs import SiteSpec
from runbook.step import CheckResult
from steps import addresses
from steps.sitebase import SiteStep


def compare_answers(site: SiteSpec, domain: str, new: Response, old: Response | None) -> str | None:
    """What is wrong with the new host's answer, or None."""
    expect = site.expect
    if new.status != expect.status:
        return f"{domain}: the new host answers {new.status}, expected {expect.status}"
    if old is not None and old.status != new.status:
        return f"{domain}: the new host answers {new.status}, the old host {old.status}"
    if expect.text and expect.text not in new.text():
        return f"{domain}: the new host's page lacks {expect.text!r}"
    if expect.same_content and old is not None and old.digest != new.digest:
        return f"{domain}: content differs (old {old.digest}, new {new.digest})"
    return None


class VerifyNew(SiteStep):
    """Before any DNS change: the new host serves every name over HTTPS with a certificate that
    verifies against the ACME root, and answers like the old host."""

    part = "verify-new"
    reversible = False

    @property
    def verify_timeout(self) -> float:  # type: ignore[override]
        return float(self.site.verify_timeout)

    def reads(self) -> dict[str, Reads]:
        return {"new": Reads(containers=(self.container,))}

    def check(self, ctx: RunContext) -> CheckResult:
        journaled = ctx.journal.state(self.id) == "done"
        if journaled and self.target.hold_state(ctx, self.site) == "held":
            # A resumed run finds the site frozen for its final sync: asking it now would only wait.
            return CheckResult(True, "verified before the freeze; the new host holds requests for the final sync")
        return self._verified(ctx)

    def verify(self, ctx: RunContext) -> str:
        """Like with like: a browser's visit of http://NAME/ on each host (redirects followed as
        long as they stay on the site's names), and HTTPS on the new host with its certificate
        verified. The old host's certificate is not what this step proves: it is read unverified."""
        tls = acme_context(ctx)
        seen, notes = [], []
        path, names = self.site.expect.path, self.site.domains
        for domain in self.site.domains:
            try:
                direct = request(self.new_address, domain, path, tls=True, context=tls)
                new = visit(self.new_address, domain, path, context=tls, names=names)
                old = visit(self.old_address, domain, path, context=unverified_context(), names=names)
            except RunbookError as exc:
                raise VerifyError(str(exc)) from exc
            problem = compare_answers(self.site, domain, direct, None) or compare_answers(
                self.site, domain, new[-1].response, old[-1].response
            )
            if problem:
                raise VerifyError(f"{problem} (old host: {describe_visit(old)}; new host: {describe_visit(new)})")
            old_hsts = old[-1].response.headers.get("strict-transport-security")
            if old_hsts and not new[-1].response.headers.get("strict-transport-security"):
                notes.append(f"{domain}: the old host sends HSTS ({old_hsts}), the new host does not")
            seen.append(f"{domain} {describe_visit(new)}")
        note = f"; {'; '.join(notes)}" if notes else ""
        return f"new host serves {', '.join(seen)} with a verified certificate, as the old host does{note}"


class VerifyLive(SiteStep):
    """Through the clients' resolver, every name answers from the new host."""

    part = "verify-live"
    reversible = False

    @property
    def verify_timeout(self) -> float:  # type: ignore[override]
        dns = self.inventory.dns
        return float((dns.cutover_ttl if dns else 300) * 2 + 30)

    def check(self, ctx: RunContext) -> CheckResult:
        return self._verified(ctx)

    def verify(self, ctx: RunContext) -> str:
        tls = acme_context(ctx)
        seen = []
        new = self.inventory.hosts["new"]
        for domain in self.site.domains:
            for rdtype in addresses.ADDRESS_TYPES:
                value, left = ctx.dns.client_view(domain, rdtype)
                answered = list(value.values) if value else []
                # A must reach the new host; any address type must no longer reach the old one
                wanted = new.addresses(rdtype, publish=True) if rdtype == "A" else ()
                stale = [v for v in answered if v in self.inventory.hosts["old"].addresses(rdtype)]
                if not set(wanted) <= set(answered) or stale:
                    raise VerifyError(
                        f"{domain} {rdtype}: the resolver still answers {answered or 'nothing'} "
                        f"(cached for {left} s more)"
                    )
            try:
                answer = request(self.new_address, domain, self.site.expect.path, tls=True, context=tls)
            except RunbookError as exc:
                raise VerifyError(str(exc)) from exc
            problem = compare_answers(self.site, domain, answer, None)
            if problem:
                raise VerifyError(problem)
            seen.append(domain)
        return f"clients reach {', '.join(seen)} on the new host"
