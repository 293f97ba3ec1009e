"""The lab localises a latency regression: a model whose conv2 is widened under the same
name (`[regression] series = "name"`) is slower, and the finding names conv2's CONV_2D
node with its time before and after — measured with the REAL benchmark_model's op
profiler (`[run] op_profiling = true`) on this host."""

from __future__ import annotations

from pathlib import Path

from tests.support.benchmark_model import binary as real_binary
from tests.support.lab import write_inventory


def cnn(path: Path, conv2_filters: int) -> Path:
    """A small float32 CNN; only conv2's width differs between the two nights."""
    import tensorflow as tf

    L = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((64, 64, 1)),
            L.Conv2D(8, 3, activation="relu", name="conv1"),
            L.MaxPooling2D(name="pool1"),
            L.Conv2D(conv2_filters, 3, activation="relu", name="conv2"),
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(10, name="logits"),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_latency_regression_names_the_operator(tmp_path, lab_sections):
    from edgeq.lab import load_inventory, run_lab

    binary = real_binary("x86_64")  # fails (never skips) without the real build
    narrow = cnn(tmp_path / "night1" / "cnn.tflite", 8)
    wide = cnn(tmp_path / "night2" / "cnn.tflite", 192)
    lab_sections["lab"].update(accuracy=False, data="", parallel=1)
    lab_sections["run"] = {
        "runs": 60, "min_s": 0.0, "warmup_runs": 5, "warmup_min_s": 0.0, "op_profiling": True,
    }  # fmt: skip
    lab_sections["budget"] = {
        "max_model_kb": 500,
        "max_latency_ms": 1000,
        "latency_percentile": "mean",
    }
    lab_sections["regression"] = {
        "series": "name",
        "min_history": 2,
        "window": 5,
        "metrics": ["latency_mean"],
        "k": 1.0,
        "min_rel": 0.5,
    }  # fmt: skip
    # k = 1: a few baseline nights must not widen the band much; min_rel = 50 %: this host's
    # slow spells can cover whole runs and their re-runs (+40 % measured on an identical
    # night), while widening conv2 8 → 192 filters makes the model about 3× slower
    devices = {
        "host": {
            "transport": "local",
            "runner": "benchmark_model",
            "benchmark_binary": str(binary),
            "use_python_runner": False,
        }
    }
    inv = load_inventory(write_inventory(tmp_path / "lab.toml", lab_sections, devices))
    # the baseline: four passing nights of the narrow model (with two, the run-to-run test
    # of a prediction interval has 1 degree of freedom and may not call even a 3x change)
    for _ in range(4):
        (rec,) = run_lab(inv, models=[narrow], labels=["cnn"]).results
        assert rec.status == "pass", rec.reason
        assert rec.result["run"]["op_profile"]["run_order"]
    run = run_lab(inv, models=[wide], labels=["cnn"])
    (rec,) = run.results
    assert rec.status == "fail", [c["message"] for c in rec.checks]
    (check,) = [c for c in rec.checks if c["name"] == "regression:latency_mean"]
    assert check["passed"] is False
    # borne out by two fresh re-runs on the device ([regression] confirm, default 2): the
    # figure judged is the best of the three processes
    block = rec.result["confirmation"]
    values = block["metrics"]["latency_mean"]["values"]
    assert block["reruns"] == 2 and len(values) == 3
    assert check["measured"] == min(values)
    assert "the best of 3 runs: confirmed by re-runs" in check["message"]
    ops = rec.result["op_changes"]["regression:latency_mean"]  # kept with the result
    top = ops[0]
    assert top["type"] == "CONV_2D" and "conv2" in top["label"], ops
    assert top["now_ms"] > top["before_ms"]
    # the finding (what the reports show) says it in words
    (finding,) = [f for f in run.findings if f.kind == "regression"]
    assert "where: " in finding.message and "conv2" in finding.message
    assert "CONV_2D" in finding.message and " → " in finding.message
    # the HTML report shows the changed operators and the top ones
    from edgeq.lab import report
    from edgeq.lab.history import History

    with History(Path(lab_sections["lab"]["db"])) as h:
        html = report.render(report.build(h), "html")
    assert "operators behind <code>regression:latency_mean</code>" in html
    assert "where the time goes: top 5 operators" in html and "CONV_2D" in html
