"""The benchmark_model log parser on VERBATIM outputs of the real tool (sources in
samples/SOURCES.md and next to each test), and the run document built from them: only the
figures the tool printed, no invented percentiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeq.budget import Budget, judge
from edgeq.errors import RunnerError
from edgeq.results import validate_run
from edgeq.runners.benchmark_model import to_run_document
from edgeq.settings import RunSettings
from edgeq_android.parser import parse_output, parse_stat

SAMPLES = Path(__file__).resolve().parent / "samples"
pytestmark = pytest.mark.unit  # the fast tier: `make test-unit`


def _sample(name: str):
    return parse_output((SAMPLES / name).read_text())


def _doc(log, text="", accuracy=None):
    return to_run_document(
        log,
        model={"path": "/data/local/tmp/m.tflite", "bytes": 1000, "sha256": "ab" * 32},
        env={"machine": "aarch64", "emulated": False},
        settings=RunSettings(),
        accuracy=accuracy,
        binary={"binary": "benchmark_model", "binary_sha256": "cd" * 32, "argv": []},
        log_text=text,
        started_utc="2026-01-01T00:00:00Z",
    )


def test_modern_info_prefixed_log():
    # Source: https://github.com/tensorflow/tensorflow/issues/61946 (pkgoogle, 2023-09-27)
    log = _sample("tf61946_modern_info.txt")
    assert log.params["Graph"] == "./mobilenet_v1_1.0_224_quant.tflite"
    assert log.model_size_mb == 4.27635 and log.init_ms == 0.53
    assert (log.warmup.count, log.warmup.first, log.warmup.avg) == (5, 124020, 117225)
    s = log.inference
    assert (s.count, s.first, s.curr, s.min, s.max, s.avg, s.std) == (
        50,
        121183,
        115199,
        111222,
        121324,
        116066,
        1906,
    )
    assert log.timings_us == {
        "init": 530,
        "first_inference": 124020,
        "warmup_avg": 117225,
        "inference_avg": 116066,
    }
    assert log.memory_mb == {"init": 3.75, "overall": 12.1914}
    assert log.op_profile is None and log.delegates == [] and log.errors == []

    doc = validate_run(_doc(log))
    assert doc["runner"]["name"] == "benchmark_model"
    assert doc["latency_ms"]["invoke"] == {
        "count": 50,
        "min": 111.222,
        "max": 121.324,
        "mean": 116.066,
        "std": 1.906,
    }
    assert doc["latency_ms"]["end_to_end"] is None
    assert doc["phases_ms"] == pytest.approx(
        {"init": 0.53, "first_inference": 124.02, "warmup": 586.125, "steady_state": 5803.3}
    )
    assert doc["memory"]["footprint_mb"] == {"init": 3.75, "overall": 12.1914}


def test_percentiles_an_old_build_does_not_print_stay_absent_and_max_bounds_them():
    # Same sample as above (tensorflow/tensorflow#61946): a build that prints no percentiles.
    doc = validate_run(_doc(_sample("tf61946_modern_info.txt")))
    for key in ("p50", "p90", "p95", "p99"):
        assert key not in doc["latency_ms"]["invoke"]
    verdict = judge(Budget(max_latency_ms=500, latency_percentile="p90"), doc, None)
    check = next(c for c in verdict.checks if c.metric == "latency_p90")
    # never estimated: judged at the nearest higher figure the log gives, and said so
    assert check.measured == 121.324 and check.judged_at == "max" and check.passed is True
    assert check.source == "benchmark_model at max"
    assert "does not report p90, and max bounds it from above" in check.note
    strict = judge(Budget(max_latency_ms=120, latency_percentile="p90"), doc, None)
    assert next(c for c in strict.checks if c.metric == "latency_p90").passed is False
    by_mean = judge(Budget(max_latency_ms=500, latency_percentile="mean"), doc, None)
    check = next(c for c in by_mean.checks if c.metric == "latency_mean")
    assert check.measured == 116.066 and check.passed is True and check.source == "benchmark_model"
    assert check.judged_at == "mean"


def test_gpu_delegate_applied_on_a_phone():
    # Source: https://github.com/tensorflow/tensorflow/issues/43541 (yizhaoyanbo)
    log = _sample("tf43541_gpu_delegate.txt")
    assert log.delegates == [{"name": "GPU", "executes": "all", "kernels": None}]
    assert log.params["Use gpu"] == "1" and log.params["#threads used for CPU inference"] == "4"
    assert log.init_ms == 870.557
    assert (log.inference.count, log.inference.avg) == (50, 119375)
    assert log.first_inference_us == 130565
    assert log.memory_mb == {}  # the sample ends before the memory lines: nothing invented
    doc = validate_run(_doc(log))
    assert doc["memory"]["footprint_mb"] is None and doc["delegates"][0]["name"] == "GPU"


def test_xnnpack_partially_applied():
    # Source: https://github.com/google/XNNPACK/issues/999 (AIWintermuteAI, 2021-09-06)
    log = _sample("xnnpack999_partial_delegate.txt")
    assert log.delegates == [{"name": "XNNPACK", "executes": "part", "kernels": 1}]
    assert (log.inference.avg, log.inference.max, log.inference.std) == (55744.2, 113361, 9900)
    assert log.timings_us["warmup_avg"] == 54366.2


def test_all_same_line_and_scientific_notation():
    # Source: https://github.com/tensorflow/tensorflow/issues/40183 (mieszkokl, 2020-06-06)
    log = _sample("tf40183_all_same_scientific.txt")
    warm = log.warmup  # `count=1 curr=15908626`: one run, so min = max = mean = that run
    assert (warm.count, warm.min, warm.max, warm.avg, warm.std, warm.all_same) == (
        1,
        15908626,
        15908626,
        15908626,
        0.0,
        True,
    )
    steady = log.inference  # 9 runs although 50 were asked: max_secs stopped it
    assert steady.count == 9 and steady.avg == pytest.approx(1.68505e7)
    assert log.timings_us["warmup_avg"] == pytest.approx(1.59086e7)
    assert log.params["Use xnnpack"] == "0" and log.params["Allow fp16"] == "0"
    doc = validate_run(_doc(log))
    assert doc["latency_ms"]["invoke"]["count"] == 9
    assert doc["latency_ms"]["invoke"]["mean"] == pytest.approx(16850.5)


def test_2018_log_without_prefixes_or_first_inference():
    # Source: https://github.com/yuenshome/yuenshome.github.io/issues/77 (2018-era tool)
    log = _sample("yuenshome77_2018.txt")
    assert log.init_ms == 9.933
    assert [r[0] for r in log.runs] == [4, 10]
    assert (log.inference.count, log.inference.avg, log.inference.std) == (15, 66767.6, 39)
    assert log.timings_us == {"warmup_avg": 76605.9, "init": 9933, "inference_avg": 66767.6}
    assert log.first_inference_us == 127425  # the warm-up block's `first=`


def test_older_peak_memory_line():
    # Source: https://github.com/tensorflow/tensorflow/issues/42507 (anidh)
    log = _sample("tf42507_peak_memory.txt")
    assert log.memory_mb == {"init": 0.0, "overall": 12.8672}
    assert log.params["Enable op profiling"] == "1"
    assert log.inference.count == 50 and log.inference.avg == 33209.4


def test_op_profile_tables_from_the_readme():
    # Source: tensorflow/tensorflow tensorflow/lite/tools/benchmark/README.md,
    # "Profiling model operators" (the example output block)
    text = (SAMPLES / "readme_op_profiling.txt").read_text()
    log = parse_output(text)
    prof = log.op_profile
    assert prof["nodes_executed"] == 31
    assert len(prof["run_order"]) == 31 and len(prof["top_by_time"]) == 10
    first = prof["run_order"][0]
    assert first == {
        "type": "CONV_2D",
        "start_ms": 0.0,
        "first_ms": 4.269,
        "avg_ms": 4.269,
        "percent": 0.107,
        "cdf_percent": 0.107,
        "mem_kb": 0.0,
        "times_called": 0,
        "name": "MobilenetV1/MobilenetV1/Conv2d_0/Relu6",
    }
    assert prof["top_by_time"][0]["name"] == "MobilenetV1/MobilenetV1/Conv2d_3_pointwise/Relu6"
    assert [(r["type"], r["count"], r["avg_ms"]) for r in prof["by_node_type"]] == [
        ("CONV_2D", 15, 1.406),
        ("DEPTHWISE_CONV_2D", 13, 0.169),
        ("SOFTMAX", 1, 0.0),
        ("RESHAPE", 1, 0.0),
        ("AVERAGE_POOL_2D", 1, 0.0),
    ]
    # The op profiler's own `Timings (microseconds): count=50 ...` is not the run latency,
    # and this excerpt has no `Running benchmark` blocks: no steady-state statistics.
    assert log.inference is None
    assert log.timings_us == {"warmup_avg": 83235, "init": 38467, "inference_avg": 79760.9}
    with pytest.raises(RunnerError, match="no statistics for the timed runs"):
        _doc(log, text)


def test_summary_by_node_type_with_an_overlong_type_name():
    # Source: https://github.com/tensorflow/tensorflow/issues/53138 (heeh, 2021-11-19)
    prof = _sample("tf53138_summary_by_type.txt").op_profile
    assert prof["nodes_executed"] == 64
    rows = {r["type"]: r for r in prof["by_node_type"]}
    assert rows["TFLite_Detection_PostProcess"]["avg_ms"] == 3.579
    assert rows["CONV_2D"] == {
        "type": "CONV_2D",
        "count": 34,
        "avg_ms": 266.475,
        "percent": 75.118,
        "cdf_percent": 75.118,
        "mem_kb": 0.0,
        "times_called": 34,
    }


def test_logcat_prefixes_of_the_benchmark_apk():
    # Source: https://github.com/tensorflow/tensorflow/issues/56301 (francescoyou97)
    log = _sample("tf56301_logcat.txt")
    assert log.params["Use NNAPI"] == "1" and log.params["Min num runs"] == "50"
    assert log.params["NNAPI accelerators available"] == "ipuadaptor,nnapi-reference"
    assert log.runs == []


def test_benchmark_app_result_line_from_the_docs():
    # Source: https://ai.google.dev/edge/litert/models/measurement (tensorflow/lite/g3doc/
    # performance/measurement.md), "View the results using the logcat command"
    line = (
        "... tflite  : Average inference timings in us: Warmup: 91471, Init: 4108, "
        "Inference: 80660.1"
    )
    log = parse_output(line)
    assert log.timings_us == {"warmup_avg": 91471, "init": 4108, "inference_avg": 80660.1}
    assert log.init_ms == 4.108


def test_stat_line_variants():
    assert parse_stat("count=0") is None
    same = parse_stat("count=20 curr=150(all same)")
    assert (same.count, same.min, same.max, same.avg, same.std) == (20, 150, 150, 150, 0.0)
    with_pct = parse_stat(
        "count=3 first=10 curr=12 min=9 max=12 avg=10.3333 std=1 p5=9 median=10 p95=12"
    )
    assert with_pct.percentiles == {"p5": 9, "p50": 10, "p95": 12}
    assert with_pct.to_ms()["p50"] == 0.010 and "p90" not in with_pct.to_ms()


def test_no_warm_up_run_means_no_first_inference():
    # Synthesised (no published sample has it) from the tool's formats: an empty warm-up
    # prints `count=0`, and the summary then shows the empty Stat's first()=0 and avg()=nan;
    # neither is a measurement.
    text = "\n".join(
        [
            "INFO: Running benchmark for at least 0 iterations and at least 0 seconds but "
            "terminate if exceeding 150 seconds.",
            "INFO: count=0",
            "",
            "INFO: Running benchmark for at least 5 iterations and at least 0 seconds but "
            "terminate if exceeding 150 seconds.",
            "INFO: count=5 first=120 curr=100 min=95 max=120 avg=104 std=9",
            "",
            "INFO: Inference timings in us: Init: 530, First inference: 0, Warmup (avg): nan, "
            "Inference (avg): 104",
        ]
    )
    log = parse_output(text)
    assert log.warmup is None and log.inference.count == 5
    assert log.first_inference_us is None and "warmup_avg" not in log.timings_us
    doc = validate_run(_doc(log, text))
    assert doc["phases_ms"]["first_inference"] is None and doc["phases_ms"]["warmup"] is None
