"""The import contracts of pyproject.toml (`make lint` runs them): they hold for the tree,
and an import that breaks one fails the check. Checked on a temporary copy of the packages,
so the real tree is never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = {
    "edgeq": "toolkit/edgeq",
    "edgeq_device": "device_scripts",
    "edgeq_android": "android_bench",
}


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    """The three packages and the contracts in a temporary folder."""
    for name, src in PACKAGES.items():
        shutil.copytree(ROOT / src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[importlinter]", "root_packages =", *[f"    {r}" for r in contracts["root_packages"]]]
    for c in contracts["contracts"]:
        lines.append(f"[importlinter:contract:{c['id']}]")
        for key, value in c.items():
            if key == "id":
                continue
            if isinstance(value, list):
                lines += [f"{key} =", *[f"    {v}" for v in value]]
            else:
                lines.append(f"{key} = {value}")
    (tmp_path / ".importlinter").write_text("\n".join(lines) + "\n")
    return tmp_path


def lint(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    return subprocess.run(
        [str(LINT), "--no-cache", "--no-logo"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def add_import(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}  # noqa\n")


def test_the_tree_keeps_every_contract(copy):
    out = lint(copy)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 kept, 0 broken" in out.stdout


def test_imports_that_break_a_contract_fail_the_check(copy):
    # core importing a workflow: a layer violation (and a cycle: deploy imports errors)
    add_import(copy / "edgeq" / "errors.py", "from edgeq import deploy")
    # two model-side siblings of one layer importing each other: only a cycle
    add_import(copy / "edgeq" / "data.py", "from edgeq import evaldata")
    # the device runner reaching into the host package
    add_import(copy / "edgeq_device" / "edgeq_runner.py", "import edgeq.errors")
    out = lint(copy)
    assert out.returncode == 1
    for contract in (
        "edgeq: commands → workflows → one device → device access → model side → core",
        "no import cycles between the modules of a package",
        "the device runner is one self-contained file: it imports nothing of edgeq",
    ):
        assert f"{contract} BROKEN" in out.stdout, out.stdout
    assert "1 kept, 3 broken" in out.stdout
    assert "edgeq.errors -> edgeq.deploy" in out.stdout
