"""The validity rules and the thread-sweep summary, on samples and documents built here."""

from __future__ import annotations

from edgeq.measure import combine, validity
from edgeq.runners import Measurement
from edgeq.settings import RunSettings


def _s(phase, temp=45.0, freq=1500.0, gov="performance", throttled=0):
    return {
        "phase": phase,
        "temps_c": {"thermal_zone0": temp},
        "freqs_mhz": {"cpu0": freq},
        "governor": gov,
        "throttled": throttled,
    }


def test_a_steady_run_under_performance_is_valid():
    v = validity([_s("before"), _s("after", temp=46.0)])
    assert v["verdict"] == "valid" and v["reasons"] == []
    assert v["temperature_rise_c"] == 1.0 and not v["throttled_during_run"]


def test_each_rule_names_its_reason():
    assert validity([_s("b"), _s("a", temp=50.0)])["reasons"] == ["temperature rose by 5.0 °C"]
    assert validity([_s("b"), _s("a", temp=50.0)])["verdict"] == "suspect"
    assert validity([_s("b"), _s("a", temp=56.0)])["verdict"] == "invalid"
    v = validity([_s("b"), _s("a", throttled=0x20000)])  # "throttling occurred" appeared
    assert v["verdict"] == "invalid" and "throttled" in v["reasons"][0]
    v = validity([_s("b", throttled=0x20000), _s("a", throttled=0x20000)])  # old news
    assert v["verdict"] == "valid"
    v = validity([_s("b"), _s("a", freq=600.0)])
    assert v["verdict"] == "invalid" and v["frequency_changed"]
    v = validity([_s("b", gov="schedutil"), _s("a", freq=600.0, gov="schedutil")])
    assert v["verdict"] == "suspect" and "governor schedutil scales it" in v["reasons"][0]
    assert validity([_s("b", gov="schedutil")])["reasons"] == [
        "governor is schedutil, not performance"
    ]


def _m(threads, p50):
    run = {
        "latency_ms": {"invoke": {"count": 10, "p50": p50, "p90": p50 * 1.1}},
        "validity": validity([_s("b"), _s("a")]),
        "settings": {"threads": threads},
    }
    return Measurement(run=run)


def test_sweep_keeps_the_best_and_flags_a_setting_without_effect():
    s = RunSettings(threads=(1, 2, 4)).validate()
    got = combine({1: [_m(1, 1.00)], 2: [_m(2, 0.99)], 4: [_m(4, 0.60)]}, s, [], None).run
    sweep = got["threads_sweep"]
    assert sweep["best"] == 4 and got["settings"]["threads"] == 4
    assert sweep["no_effect"] == [2] and "may ignore num_threads" in sweep["note"]
    assert got["latency_ms"]["invoke"]["p50"] == 0.60  # the document is the best setting's
