"""What the journal, the plan and the terminal may show of a written file: its hash, its size and
a diff whose secret values are masked. Never its content.

A value is masked when its key names a secret (PASSWORD, PASSWD, PASS, SECRET, TOKEN, KEY and
names containing them: MYSQL_ROOT_PASSWORD, api_key, auth_token) in the forms that compose files,
.env files and configuration use: `KEY=value`, `- KEY=value`, `KEY: value`, `"key": "value"`,
`key = value`, PHP's `define('DB_PASSWORD', '...')` and `'db_password' => '...'` (salts too);
also the password of a URL (`scheme://user:password@host`) and every value the
run knows as a Secret (TSIG key, mail passwords, Borg passphrase).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable

from runbook.secrets import MASK, Secret, scrub

SECRET_WORDS = ("PASSWORD", "PASSWD", "PASS", "SECRET", "TOKEN", "KEY", "SALT")
_KEY = r"[A-Za-z0-9_.\-]*(?:" + "|".join(SECRET_WORDS) + r")[A-Za-z0-9_.\-]*"
_ASSIGNMENT = re.compile(
    r"^(?P<lead>[\s+\-]*(?:-\s+)?(?:export\s+)?[\"'$]?)(?P<key>" + _KEY + r")(?P<sep>[\"']?\s*[:=]\s*)(?P<value>\S.*)$",
    re.IGNORECASE,
)
#: PHP's forms: `define( 'DB_PASSWORD', 'value' );` (wp-config.php) and `'db_password' => 'value',`.
_PHP = re.compile(
    r"(?P<lead>(?:define\s*\(\s*|^[\s+\-]*)(?P<q>[\"'])" + _KEY + r"(?P=q)\s*(?:,|=>)\s*)(?P<value>[\"'].*?[\"'])",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<lead>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]+:)(?P<password>[^@\s/]+)(?=@)")


def sha256(data: bytes) -> str:
    """The full hex SHA-256 of data."""
    return hashlib.sha256(data).hexdigest()


def mask_line(line: str, secrets: Iterable[Secret] = ()) -> str:
    """The line with secret values replaced by the mask (see the module's docstring)."""
    line = scrub(line, list(secrets))
    line = _URL_PASSWORD.sub(lambda m: m.group("lead") + MASK, line)
    line = _PHP.sub(lambda m: m.group("lead") + MASK, line)
    match = _ASSIGNMENT.match(line)
    if match and match.group("value").strip() not in ("|", ">", "{", "[") and MASK not in match.group("value"):
        return f"{match.group('lead')}{match.group('key')}{match.group('sep')}{MASK}"
    return line


def masked_diff(path: str, before: bytes | None, after: bytes, secrets: Iterable[Secret] = ()) -> list[str]:
    """A unified diff from `before` (None: no file yet) to `after`, secret values masked.

    A new file is shown in full (masked) as added lines; an unchanged one as ["unchanged"]."""
    known = list(secrets)
    old = [] if before is None else before.decode(errors="replace").splitlines()
    new = after.decode(errors="replace").splitlines()
    head = (f"{path} (absent)" if before is None else f"{path} (now)", f"{path} (after)")
    lines = list(difflib.unified_diff(old, new, *head, lineterm=""))
    if not lines:
        return ["unchanged"]
    return [line if line.startswith(("---", "+++", "@@")) else mask_line(line, known) for line in lines]


def file_summary(data: bytes) -> dict[str, object]:
    """Hash and size of a file's content: what the journal and the plan keep of it."""
    return {"sha256": sha256(data), "bytes": len(data)}
