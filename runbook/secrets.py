"""Secrets that mask themselves wherever they are printed or serialized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MASK = "***"


class Secret:
    """A secret value (TSIG key, password) that shows as *** in str, repr, JSON and logs.

    Only `reveal()` gives the value; call it at the last moment, where the library needs it.
    """

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str = "") -> None:
        self._value = value
        self.origin = origin

    def reveal(self) -> str:
        """Return the clear value."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK}{', from ' + self.origin if self.origin else ''})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    @classmethod
    def from_file(cls, path: Path) -> Secret:
        """Read a secret from a file (stripped). Raises OSError if it cannot be read."""
        return cls(path.read_text().strip(), origin=str(path))


def mask(value: Any) -> Any:
    """Return a JSON-safe copy of value with every Secret replaced by the mask."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value


def scrub(text: str, secrets: list[Secret]) -> str:
    """Replace any clear secret value inside text (e.g. a library's error message) by the mask."""
    for secret in secrets:
        clear = secret.reveal()
        if clear:
            text = text.replace(clear, MASK)
    return text
