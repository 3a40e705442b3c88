"""The value of an RRset, as the engine compares, journals and writes it (no I/O, no dnspython)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RRsetValue:
    """The value of one RRset: TTL and sorted record texts. `None` stands for 'absent'."""

    ttl: int
    values: tuple[str, ...]

    @staticmethod
    def of(ttl: int, values: list[str] | tuple[str, ...]) -> RRsetValue:
        return RRsetValue(ttl=int(ttl), values=tuple(sorted(values)))

    def text(self) -> str:
        return f"{', '.join(self.values)} (TTL {self.ttl})"
