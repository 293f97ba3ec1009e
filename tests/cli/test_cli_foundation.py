"""The CLI's conventions: --version, --json, one-line errors with documented exit codes."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from edgeq import __version__

pytestmark = pytest.mark.unit  # the fast tier: `make test-unit`


def test_version(cli):
    res = cli("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"edgeq {__version__}"


def test_demo_layer_human_and_json(cli):
    res = cli("demo", "layer")
    assert res.exit_code == 0
    assert "[[124  30 251  74 146]" in res.stdout
    assert "0.003925407435722753" in res.stdout and "0.002573583625884542" in res.stdout
    res = cli("demo", "layer", "--json")
    doc = json.loads(res.stdout)
    assert set(doc) == {
        "weights_quantized",
        "weights_rmse",
        "output_rmse",
        "bytes_float32",
        "bytes_quantized",
    }
    assert doc["weights_rmse"] == 0.003925407435722753


def test_demo_rover_json_and_files(cli, tmp_path):
    res = cli("demo", "rover", "--bits", "4-5", "--bits", "8", "--out", tmp_path, "--json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["bits"] for r in rows] == [4, 5, 8]
    assert set(rows[0]) == {"bits", "bytes", "saving", "rmse", "psnr_db"}
    assert (tmp_path / "rover_grid.png").is_file() and (tmp_path / "rover_sizes.png").is_file()


def test_demo_rover_custom_image(cli, tmp_path):
    img = tmp_path / "tiny.png"
    Image.new("RGB", (7, 5), (200, 10, 77)).save(img)
    res = cli("demo", "rover", "--image", img, "--bits", "3", "--out", tmp_path / "o", "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)[0]["bytes"] == -(-7 * 5 * 3 * 3 // 8)


def test_bad_bits_is_a_usage_error_on_one_line(cli, tmp_path):
    res = cli("demo", "rover", "--bits", "9", "--out", tmp_path)
    assert res.exit_code == 2
    assert res.stderr.strip() == "edgeq: error: --bits must be in 1..8, got 9"
    assert res.stdout == ""


def test_errors_under_json_still_give_one_json_document(cli, tmp_path):
    res = cli("demo", "rover", "--bits", "0", "--out", tmp_path, "--json")
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2 and "1..8" in doc["error"]["message"]


def test_not_an_image(cli, tmp_path):
    bad = tmp_path / "x.jpeg"
    bad.write_bytes(b"not a jpeg")
    res = cli("demo", "rover", "--image", bad, "--out", tmp_path)
    assert res.exit_code == 2 and "cannot read image" in res.stderr


def test_garbled_bits_value(cli, tmp_path):
    res = cli("demo", "rover", "--bits", "five", "--out", tmp_path)
    assert res.exit_code == 2 and "--bits" in res.stderr


def test_console_script_runs(repo_root):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("edgeq")
    proc = subprocess.run([exe, "demo", "layer", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["bytes_quantized"] == 15
