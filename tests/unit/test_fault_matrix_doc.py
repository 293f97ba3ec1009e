"""docs/fault-matrix.md cannot drift from the suite: every test it names exists (with its
parameter id, when it names one), every test of a fault file (`tests/<subsystem>/test_*_faults.py`,
tests/README.md) is in it, and it keeps at least 30 cases."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from tests.support.repo import REPO

DOC = REPO / "docs" / "fault-matrix.md"
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(\[[^\]`]+\])?`")


def _fault_files() -> list[str]:
    """The fault files: `test_*_faults.py` in the subsystem folders, as rootdir paths."""
    return sorted(
        f.relative_to(REPO).as_posix() for f in (REPO / "tests").rglob("test_*_faults.py")
    )


def _rows() -> list[str]:
    return [ln for ln in DOC.read_text().splitlines() if re.match(r"\| \d+ \|", ln)]


def _functions(path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_every_named_test_exists():
    named = NAMED.findall(DOC.read_text())
    assert len(named) > 30
    with_ids: dict[str, set[str]] = {}
    for path, name, param in named:
        file = REPO / path
        assert file.is_file(), path
        assert name in _functions(file), f"{path}::{name} is named in {DOC.name} but missing"
        if param:
            with_ids.setdefault(path, set()).add(f"{path}::{name}{param}")
    assert sum(map(len, with_ids.values())) >= 7  # Ctrl-C in each phase, each signal
    # parameter ids exist only once collected
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", "", *with_ids],
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout.split()  # fmt: skip
    for ids in with_ids.values():
        for node in ids:
            assert node in collected, f"{node} is named in {DOC.name} but not collected"


def test_every_fault_test_is_in_the_matrix():
    text = DOC.read_text()
    files = _fault_files()
    # every fault file the matrix names is found here (so none escapes the check below)
    named = {path for path, _, _ in NAMED.findall(text) if path.endswith("_faults.py")}
    assert len(named) >= 10 and named <= set(files), sorted(named - set(files))
    for rel in files:
        tests = sorted(n for n in _functions(REPO / rel) if n.startswith("test_"))
        assert tests, f"{rel} has no tests"
        for name in tests:
            assert f"`{rel}::{name}" in text, f"{rel}::{name} has no row in {DOC.name}"


def test_at_least_thirty_cases_each_with_behaviour_and_test():
    rows = _rows()
    assert len(rows) >= 30
    numbers = [int(r.split("|")[1]) for r in rows]
    assert numbers == list(range(1, len(rows) + 1))  # numbered in order, none twice
    for r in rows:
        cells = [c.strip() for c in r.strip().strip("|").split("|")]
        assert len(cells) == 4 and all(cells), r
        assert NAMED.search(cells[3]), r
