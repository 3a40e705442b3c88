"""The scripts that run on the servers (runbook/remote/scripts): each shell script parses in the
shell it names and shellcheck finds nothing in it, each Python script compiles; the loader sends
them without their header; the code loads only scripts that exist; the package ships them all."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from runbook.remote.scripts import script, without_header

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "runbook" / "remote" / "scripts"
SHELL_SCRIPTS = sorted(SCRIPTS.glob("*.sh"))
PYTHON_SCRIPTS = sorted(p for p in SCRIPTS.glob("*.py") if p.name != "__init__.py")
SHELLS = ("sh", "bash")


def dialect(path: Path) -> str | None:
    """The shell a script is written for: its shebang's, else its header's `# shellcheck shell=`."""
    lines = path.read_text().split("\n")
    if lines[0].startswith("#!"):
        return lines[0].split("/")[-1].split()[-1]  # #!/bin/sh, #!/usr/bin/env bash
    for line in lines:
        if not line.startswith("#"):
            break
        if found := re.match(r"# shellcheck shell=(\w+)", line):
            return found.group(1)
    return None


def test_the_scripts_are_found() -> None:
    assert len(SHELL_SCRIPTS) > 20 and len(PYTHON_SCRIPTS) >= 2


def test_every_shell_script_names_its_shell() -> None:
    unnamed = [p.name for p in SHELL_SCRIPTS if dialect(p) not in SHELLS]
    assert not unnamed, f"name the shell in the first line (`# shellcheck shell=sh` or a shebang): {unnamed}"


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_the_shell_script_parses(path: Path) -> None:
    shell = dialect(path) or "sh"
    result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, f"{shell} -n {path.name}: {result.stderr}"


def test_shellcheck_finds_nothing() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: apt-get install shellcheck (scripts/install.sh does)")
    findings = []
    for shell in SHELLS:
        paths = [p.name for p in SHELL_SCRIPTS if dialect(p) == shell]
        if not paths:
            continue
        result = subprocess.run(
            ["shellcheck", "--norc", f"--shell={shell}", "--severity=style", "--format=gcc", *paths],
            capture_output=True,
            text=True,
            cwd=SCRIPTS,
        )
        if result.returncode not in (0, 1):  # 1: findings; anything else: shellcheck could not check
            pytest.fail(f"shellcheck --shell={shell} exits {result.returncode}: {result.stderr}")
        findings += result.stdout.splitlines()
    assert not findings, "shellcheck (fix it, or disable it in the header with the reason):\n" + "\n".join(findings)


@pytest.mark.parametrize("path", PYTHON_SCRIPTS, ids=lambda p: p.name)
def test_the_python_script_compiles(path: Path, tmp_path: Path) -> None:
    python = shutil.which("python3") or sys.executable
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(tmp_path))  # no __pycache__ in the tree
    result = subprocess.run([python, "-m", "py_compile", str(path)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"python3 -m py_compile {path.name}: {result.stderr}"


def test_the_header_is_not_sent_and_a_one_line_script_has_no_newline() -> None:
    header = "# shellcheck shell=sh\n# what it does\n"
    assert without_header(header + "\nset -e\necho a\n") == "\nset -e\necho a\n"
    assert without_header(header + "echo a; echo b\n") == "echo a; echo b"
    assert (
        without_header("#!/bin/sh\n# kept: it is the script's\necho a\n")
        == "#!/bin/sh\n# kept: it is the script's\necho a\n"
    )
    assert without_header('"""A docstring."""\nimport sys\n') == '"""A docstring."""\nimport sys\n'
    assert without_header(header) == ""
    for path in [*SHELL_SCRIPTS, *PYTHON_SCRIPTS]:
        sent = script(path.name)
        assert path.read_text().endswith(sent if "\n" in sent else sent + "\n")
        assert not sent.startswith("# "), path.name


def test_the_code_loads_only_scripts_that_exist() -> None:
    names = {p.name for p in [*SHELL_SCRIPTS, *PYTHON_SCRIPTS]}
    sources = [*(ROOT / "runbook").rglob("*.py"), *(ROOT / "steps").rglob("*.py"), ROOT / "tasks.py"]
    loaded = {name for source in sources for name in re.findall(r'\bscript\("([^"]+)"\)', source.read_text())}
    assert loaded - names == set(), "script() of a file that is not in runbook/remote/scripts"
    assert names - loaded == set(), "scripts that no code loads"


def test_the_package_ships_every_script() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["runbook.remote.scripts"]
    assert any(fnmatch.fnmatch("runbook.remote.scripts", p) for p in config["packages"]["find"]["include"])
    unshipped = [
        p.name for p in [*SHELL_SCRIPTS, *PYTHON_SCRIPTS] if not any(fnmatch.fnmatch(p.name, g) for g in patterns)
    ]
    assert not unshipped, f"not in pyproject.toml's package-data: {unshipped}"
