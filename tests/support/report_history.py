"""A lab history for the report tests, filled night by night through the code the lab uses
to judge and record a result (regress.evaluate / regress.annotate / History.record).

Eight nights (2025-03-01 … 03-08, 02:00 UTC), five devices, two models:

    pi4     int8 passes six nights, then its latency jumps +40 %: a regression on night 7
            that is still failing on night 8; float32 passes every night
    pi5     passes, then fails its health check on nights 7 and 8: quarantined (its
            environment comes from the health check)
    pi3     passes, then a connection error on night 8 (no environment tonight: the report
            falls back to the last one seen)
    phone   benchmark_model (no p90, no accuracy): an error on night 7, passes again on
            night 8: a recovery
    shared  passes, then held by somebody else on night 8: busy

Run `python -m tests.lab.report_history OUT.sqlite` to write it for a look.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from edgeq.lab import regress
from edgeq.lab.history import History

NIGHTS = 8
DEVICES = ("pi4", "pi5", "pi3", "phone", "shared")
MODELS = ("model_int8.tflite", "model_float32.tflite")
POLICY = regress.Policy()
SIZE = {"model_int8.tflite": 43_120.0, "model_float32.tflite": 155_800.0}
BASE_MS = {"model_int8.tflite": 1.9, "model_float32.tflite": 3.4}

PI_ENV = {
    "machine": "aarch64",
    "cpu_model": "Cortex-A72",
    "os": "Debian GNU/Linux 12 (bookworm)",
    "runtime": "tflite-runtime",
    "runtime_version": "2.14.0",
    "cpu_governor": "ondemand",
    "temperature_c": 48.7,
    "throttling": {"raw": "0x0", "under_voltage": False, "throttled": False},
    "emulated": False,
}
PHONE_ENV = {
    "machine": "aarch64",
    "cpu_model": "Tensor G2",
    "cpu_abi": "arm64-v8a",
    "device_model": "Google Pixel 7",
    "os": "Android 14 (API 34)",
    "runtime": "benchmark_model",
    "runtime_version": None,
    "cpu_governor": "schedutil",
    "temperature_c": 36.0,
    "emulated": False,
}


def started(night: int) -> str:
    return f"2025-03-{night:02d}T02:00:00Z"


def record(h: History, row: dict) -> int:
    """`History.record` (kept as a seam for the fixture)."""
    return h.record(row)


def judged(h: History, row: dict) -> dict:
    """Judge a measured row as the lab does (budget + regression), find its streaks, write."""
    key = row.get("artifact_sha256") or row["model"]  # the history's series key
    if row["status"] in ("pass", "fail"):
        row["checks"] += regress.evaluate(h, row["device"], key, row["metrics"], POLICY)
        failing = [c for c in row["checks"] if c.get("passed") is False]
        row["status"] = "fail" if failing else "pass"
        row["reason"] = "; ".join(c["message"] for c in failing)
    findings, _, _ = regress.annotate(
        h,
        row["device"],
        key,
        row["run_id"],
        row["started_utc"],
        row["status"],
        row["checks"],
        label=row["model"],
    )
    row["findings"] = [f.to_dict() for f in findings]
    row["id"] = record(h, row)
    return row


def base_row(night: int, device: str, model: str, status: str) -> dict:
    transport = {"phone": "adb"}.get(device, "ssh")
    return {
        "run_id": f"run-{night:02d}",
        "device": device,
        "transport": transport,
        "address": "emulator-5554" if transport == "adb" else f"pi@{device}.lan:22",
        "identity": f"{transport}://{device}",
        "model": model,
        "artifact_path": f"/lab/models/{model}",
        "artifact_sha256": ("a1" if "int8" in model else "f3") * 32,
        "mode": "int8" if "int8" in model else "float32",
        "status": status,
        "attempts": 1,
        "started_utc": started(night),
        "finished_utc": started(night).replace("02:00:00", "02:05:00"),
        "metrics": {},
        "checks": [],
    }


def measured(night: int, device: str, model: str, rng: random.Random, slow: float = 1.0):
    row = base_row(night, device, model, "pass")
    p90 = BASE_MS[model] * slow * (1 + rng.uniform(-0.03, 0.03))
    if device == "phone":  # benchmark_model: mean and p50, no p90, no accuracy
        row["metrics"] = {
            "latency_mean": p90 * 0.85,
            "latency_p50": p90 * 0.8,
            "model_bytes": SIZE[model],
        }
        row["environment"] = dict(PHONE_ENV)
    else:
        row["metrics"] = {
            "latency_p50": p90 * 0.8,
            "latency_p90": p90,
            "accuracy": 0.981 if "int8" in model else 0.984,
            "model_bytes": SIZE[model],
            "peak_rss_kb": 31_000.0 + rng.uniform(-300, 300),
        }
        row["environment"] = dict(PI_ENV, temperature_c=45 + rng.uniform(0, 8))
    row["checks"] = [
        {"name": "health", "kind": "health", "passed": True, "message": "doctor ok (0.4 s)"},
        {"name": "run", "kind": "run", "passed": True, "message": "ran"},
        {
            "name": "budget:model_size",
            "kind": "budget",
            "passed": True,
            "measured": SIZE[model] / 1024,
            "limit": 200,
            "op": "<=",
            "unit": "KB",
            "message": f"model_size {SIZE[model] / 1024:.4g} KB (limit <= 200 KB)",
        },
    ]
    return row


def night_of(h: History, night: int, rng: random.Random) -> None:
    run_id = f"run-{night:02d}"
    h.start_run(
        run_id,
        started(night),
        "lab.toml",
        "0" * 64,
        "edgeq lab run",
        {
            "devices": list(DEVICES),
            "models": list(MODELS),
            "regression": {"window": 10, "k": 3.0, "min_rel": 0.07, "min_history": 3},
        },
        {"edgeq_version": "0.4.0", "git_sha": "c1fe693" + "0" * 33, "host": "lab-host"},
    )
    bad = []
    for device in DEVICES:
        for model in MODELS:
            if device == "pi4" and model == MODELS[0] and night >= 7:
                row = measured(night, device, model, rng, slow=1.4)  # the regression
            elif device == "pi5" and night >= 7:
                row = base_row(night, device, model, "quarantined")
                row["reason"] = "not reachable: pi5.lan:22 refused the connection"
                row["environment"] = dict(PI_ENV, temperature_c=71.2, cpu_governor="powersave")
                row["checks"] = [
                    {"name": "health", "kind": "health", "passed": False, "message": row["reason"]}
                ]
            elif device == "pi3" and night == 8:
                row = base_row(night, device, model, "error")
                row["reason"] = (
                    "ConnectError: the connection to pi3.lan:22 was lost after 3 attempts"
                )
                row["error_type"], row["attempts"] = "ConnectError", 3
                row["error_text"] = "attempt 1: connection lost\nattempt 3: cannot connect"
                row["checks"] = [
                    {"name": "health", "kind": "health", "passed": True, "message": "doctor ok"},
                    {"name": "run", "kind": "run", "passed": False, "message": row["reason"]},
                ]
            elif device == "phone" and night == 7:
                row = base_row(night, device, model, "error")
                row["reason"] = "DeviceError: adb: device offline"
                row["error_type"] = "DeviceError"
                row["checks"] = [
                    {"name": "run", "kind": "run", "passed": False, "message": row["reason"]}
                ]
            elif device == "shared" and night == 8:
                row = base_row(night, device, model, "busy")
                row["reason"] = "held by another run for longer than lock_timeout_s = 3600 s"
                row["attempts"] = 0
            else:
                row = measured(night, device, model, rng)
            bad.append(judged(h, row)["status"] not in ("pass", "busy"))
    h.finish_run(run_id, "fail" if any(bad) else "pass", 1 if any(bad) else 0)
    with h.transaction() as db:  # finish_run stamps the wall clock; this night ended at 02:40
        db.execute(
            "UPDATE runs SET finished_utc = ? WHERE run_id = ?",
            (started(night).replace("02:00:00", "02:40:00"), run_id),
        )


def fill(path: Path, nights: int = NIGHTS, seed: int = 3) -> Path:
    rng = random.Random(seed)
    with History(path) as h:
        for night in range(1, nights + 1):
            night_of(h, night, rng)
    return path


if __name__ == "__main__":
    print(fill(Path(sys.argv[1])))
