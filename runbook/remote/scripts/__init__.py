"""The shell and Python that run on the servers, one file each, loaded by name: `script("hold.sh")`.

Values reach a script only as arguments, never inside its text: `sh -c SCRIPT NAME ARG...` ($1,
$2...), `sh -s -- ARG...` with the script on stdin, `python3 -c SCRIPT ARG...` (sys.argv); a few
are written to a host as files (mail-run.sh, mail-certs-dump.py). A script may hold only a shell
function that others share, sent in front of their text: `script("db-rows.sh") +
script("db-import.sh")` (the row-count comparison of both database imports).

A file may begin with a header for its readers and for shellcheck: its first lines that start with
"#", up to the first line that does not (a shebang, "#!", is never header: it belongs to the
script). The header says how the script is called and holds the shellcheck directives (`# shellcheck
shell=sh` first). It is not sent: what runs on the host, and what a plan shows, is the rest of the
file, as it is. A script of one line comes back without its newline (a one-line command, shown on
one line in a plan).

tests/unit/test_remote_scripts.py checks every file: `sh -n` (or `bash -n`) and shellcheck in the
dialect the file names, `python3 -m py_compile`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def script(name: str) -> str:
    """The script runbook/remote/scripts/NAME, without its header. Raises FileNotFoundError."""
    return without_header(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))


def without_header(text: str) -> str:
    """The text after its header (see the module's docstring); one line loses its newline."""
    start = 0
    while text.startswith("#", start) and not text.startswith("#!", start):
        end = text.find("\n", start)
        start = len(text) if end < 0 else end + 1
    body = text[start:]
    if body.count("\n") == 1 and body.endswith("\n"):
        body = body[:-1]
    return body
