"""The per-operator profile's pure parts: node names as benchmark_model prints them, the
sort and cumulative %, and which operators account for a latency change."""

from __future__ import annotations

from edgeq import profile
from edgeq.lab.regress import localise

CONV2 = "[m_1/relu2_1/Relu;m_1/bn2_1/batchnorm/add_1;m_1/conv2_1/convolution]:2"


def op_profile(conv1: float, conv2: float, pool: float) -> dict:
    rows = [
        {
            "type": "CONV_2D",
            "avg_ms": conv1,
            "name": "[m_1/relu1_1/Relu;m_1/conv1_1/convolution]:0",
        },
        {"type": "MAX_POOL_2D", "avg_ms": pool, "name": "[m_1/pool1_1/MaxPool2d]:1"},
        {"type": "CONV_2D", "avg_ms": conv2, "name": CONV2},
        {"type": "FULLY_CONNECTED", "avg_ms": 0.004, "name": "[StatefulPartitionedCall_1:0]:3"},
    ]
    return {"run_order": [{**r, "percent": 0.0, "times_called": 1} for r in rows]}


def test_rows_are_sorted_mapped_to_layers_and_cumulative():
    names = ["image", "conv1", "relu1", "pool1", "conv2", "bn2", "relu2", "logits"]
    p = profile.from_run({"op_profile": op_profile(0.1, 0.3, 0.05)}, layer_names=names)
    assert [r.label for r in p.rows] == ["conv2", "conv1", "pool1", "logits"]
    assert p.rows[0].layers == ["conv2", "bn2", "relu2"] and p.rows[0].node == 2
    assert abs(p.rows[-1].cum_percent - 100) < 1e-6 and abs(p.total_ms - 0.454) < 1e-9
    assert p.by_layer()["conv2"] == 0.3


def test_delegate_rows_are_flagged_not_mapped():
    prof = {
        "run_order": [
            {"type": "Convolution (NHWC, F32) IGEMM", "avg_ms": 0.2, "percent": 90.0,
             "name": "Delegate/Convolution (NHWC, F32) IGEMM:0"},
            {"type": "SHAPE", "avg_ms": 0.0, "percent": 10.0, "name": "[m_1/flatten_1/Shape]:4"},
        ]
    }  # fmt: skip
    p = profile.from_run({"op_profile": prof}, layer_names=["flatten"])
    assert p.delegated and p.rows[0].delegated and p.rows[0].layers == []
    assert p.rows[1].layers == ["flatten"] and any("delegated" in n for n in p.notes)


def test_localise_names_the_operator_that_moved():
    base = [op_profile(0.10, 0.40, 0.05), op_profile(0.11, 0.42, 0.05)]
    where = localise(op_profile(0.10, 0.65, 0.05), base)
    (top,) = where["operators"]
    assert top["type"] == "CONV_2D" and top["node"] == 2 and top["label"] == "m_1/relu2_1/Relu"
    assert (
        abs(top["delta_ms"] - 0.24) < 1e-9 and "→ 0.65 ms, +0.24 ms of +0.235 ms" in where["text"]
    )
    assert localise(op_profile(0.1, 0.3, 0.05), []) is None  # no baseline profile
    assert localise(op_profile(0.1, 0.3, 0.05), base) is None  # nothing rose
