"""The keep-float search's decisions (`selective.search`): which steps it takes, keeps and
rejects against the drop target and the latency limit. The steps' figures are the input
here; measuring them for real is tests/pipeline/test_inspect.py's part."""

from __future__ import annotations

from edgeq.quantmodes.selective import AutoStep, Node, search


def node(name: str) -> Node:
    return Node(tensor=name, node=name, op="CONV_2D", tensor_idx=0, layers=(name,))


ORDER = [node("conv2"), node("logits"), node("conv1")]


def measuring(drop: dict[tuple[str, ...], float], ms: dict[tuple[str, ...], float] | None):
    """A measure() over given figures per float set; records what it was asked."""
    asked: list[tuple[str, ...]] = []

    def measure(keep, added):
        names = tuple(n.name for n in keep)
        asked.append(names)
        step = AutoStep(
            kept=list(names), added=added.name if added else None, bytes=100 + len(names),
            size_cost_bytes=len(names), validation_accuracy=0.9, drop_pp=drop[names],
            latency_ms=None if ms is None else ms[names],
        )  # fmt: skip
        return f"model{names}".encode(), step

    return measure, asked


def test_without_a_limit_it_adds_layers_until_the_drop_fits():
    drop = {(): 3.0, ("conv2",): 1.5, ("conv2", "logits"): 0.5}
    measure, asked = measuring(drop, None)
    blob, keep, steps = search(ORDER, measure, max_drop_pp=1.0)
    assert [n.name for n in keep] == ["conv2", "logits"]
    assert blob == b"model('conv2', 'logits')"
    assert asked == [(), ("conv2",), ("conv2", "logits")]  # conv1 never tried
    assert all(s.accepted for s in steps)
    assert "drop +0.50 pp <= 1 pp" in steps[-1].why


def test_a_step_over_the_latency_limit_is_rejected_and_the_next_layer_tried():
    drop = {(): 3.0, ("conv2",): 0.2, ("logits",): 1.5, ("logits", "conv1"): 0.8}
    ms = {(): 1.0, ("conv2",): 2.5, ("logits",): 1.1, ("logits", "conv1"): 1.9}
    measure, asked = measuring(drop, ms)
    blob, keep, steps = search(ORDER, measure, max_drop_pp=1.0, max_latency_ms=2.0)
    # conv2 in float fixes the drop but costs 2.5 ms: rejected; logits then conv1 fit
    assert asked == [(), ("conv2",), ("logits",), ("logits", "conv1")]
    assert [s.accepted for s in steps] == [True, False, True, True]
    assert "2.500 ms > 2 ms: conv2 stays int8" in steps[1].why
    assert [n.name for n in keep] == ["logits", "conv1"] and blob == b"model('logits', 'conv1')"
    assert all(s.latency_ms <= 2.0 for s in steps if s.accepted)


def test_the_drop_target_stops_the_search_before_the_latency_limit_matters():
    drop = {(): 3.0, ("conv2",): 0.9}
    ms = {(): 1.0, ("conv2",): 1.5}
    measure, asked = measuring(drop, ms)
    _, keep, steps = search(ORDER, measure, max_drop_pp=1.0, max_latency_ms=10.0)
    assert asked == [(), ("conv2",)] and [n.name for n in keep] == ["conv2"]
    assert steps[-1].accepted and "1.500 ms <= 10 ms" in steps[-1].why


def test_full_int8_over_the_limit_keeps_nothing_in_float():
    measure, asked = measuring({(): 3.0}, {(): 5.0})
    blob, keep, steps = search(ORDER, measure, max_drop_pp=1.0, max_latency_ms=2.0)
    assert asked == [()] and keep == [] and blob == b"model()"
    assert not steps[0].accepted and "no layer can be kept in float" in steps[0].why


def test_every_layer_rejected_leaves_full_int8():
    drop = {(): 3.0, ("conv2",): 0.1, ("logits",): 0.1, ("conv1",): 0.1}
    ms = {(): 1.0, ("conv2",): 3.0, ("logits",): 3.0, ("conv1",): 3.0}
    measure, asked = measuring(drop, ms)
    blob, keep, steps = search(ORDER, measure, max_drop_pp=1.0, max_latency_ms=2.0)
    assert keep == [] and blob == b"model()" and len(asked) == 4
    assert [s.accepted for s in steps] == [True, False, False, False]
