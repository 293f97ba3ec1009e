"""`edgeq lab run` on models nobody here wrote: with no dataset they are judged on size,
latency and output agreement; with their own data, on accuracy too."""

from __future__ import annotations

from tests.support.foreign_models import BUDGET, REQUIRED
from tests.support.lab import write_inventory


def test_lab_runs_foreign_models_with_and_without_data(foreign, tmp_path, pi_factory, lab_sections):
    from edgeq.lab import load_inventory, run_lab

    models = [str(foreign[n].path) for n in REQUIRED]
    lab_sections["lab"]["models"] = models
    lab_sections["lab"]["data"] = ""  # no dataset: agreement judges them
    lab_sections["budget"] = BUDGET
    _, pi = pi_factory()
    devices = {"pi": pi, "host": {"transport": "local"}}
    inv = load_inventory(write_inventory(tmp_path / "lab.toml", lab_sections, devices))
    run = run_lab(inv)
    assert run.exit_code == 0, [(r.device, r.model, r.reason) for r in run.results]
    assert len(run.results) == 2 * len(REQUIRED)
    for r in run.results:
        assert r.result["run"]["agreement"]["report"]["samples"] == 32, (r.device, r.model)

    # with the float model's own data, on the Pi
    lab_sections["lab"]["models"] = [str(foreign["float_rgb"].path)]
    lab_sections["lab"]["data"] = str(foreign["float_rgb"].npz)
    inv = load_inventory(write_inventory(tmp_path / "lab2.toml", lab_sections, {"pi": pi}))
    (rec,) = run_lab(inv).results
    assert rec.status == "pass" and rec.result["run"]["accuracy"]["samples"] > 0
