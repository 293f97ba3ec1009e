"""Deploy: stage → push (skip what the device has) → run → pull → validate → verdict → save.

`deploy()` is the whole of `edgeq deploy`; `measure()` is the device part alone (used by
`edgeq bench` and the lab). Without an artifact, `prepare_artifact()` trains and converts
per the [model] recipe, reusing an earlier result with the same content hash.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import __version__, convert, data, fsutil, stage
from .budget import Budget, judge
from .config import TargetConfig
from .errors import CommandError, ModelError, RunnerError, UsageError, tail
from .results import DeployResult, parse_run
from .targets import Target, make_target

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunSettings:
    """How the device runner measures (passed as its command-line options)."""

    threads: int = 1
    runs: int = 100
    min_s: float = 1.0
    warmup_runs: int = 10
    warmup_min_s: float = 0.5
    max_s: float = 60.0
    batch_size: int = 64
    eval_limit: int | None = None
    timeout: float = 900.0
    #: Android: the host's native benchmark_model (else $EDGEQ_BENCHMARK_MODEL or the
    #: target's `benchmark_binary`); adb targets with one run it instead of the runner.
    benchmark_binary: str | None = None
    #: benchmark_model switches: use_xnnpack, use_gpu, use_nnapi, op_profiling, taskset
    benchmark_options: dict[str, Any] | None = None

    def validate(self) -> RunSettings:
        for name in ("threads", "runs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("min_s", "warmup_min_s", "max_s", "warmup_runs"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0")
        if self.timeout <= 0:
            raise UsageError("--timeout must be > 0 seconds")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise UsageError("--limit must be >= 1")
        return self

    def runner_args(self) -> list[str]:
        return [
            "--threads",
            str(self.threads),
            "--runs",
            str(self.runs),
            "--min-s",
            str(self.min_s),
            "--warmup-runs",
            str(self.warmup_runs),
            "--warmup-min-s",
            str(self.warmup_min_s),
            "--max-s",
            str(self.max_s),
            "--batch-size",
            str(self.batch_size),
        ]


def _say(progress: Progress | None, msg: str) -> None:
    if progress:
        progress(msg)


# --------------------------------------------------------------------------- artifacts


def prepare_artifact(
    model_cfg: dict[str, Any],
    data_path: Path | None = None,
    progress: Progress | None = None,
    train_progress: Any = None,
) -> Path:
    """Train + convert per the [model] recipe, or reuse the cached result of the same recipe."""
    from .train import Recipe, train

    recipe = Recipe(
        dataset=model_cfg["dataset"],
        epochs=model_cfg["epochs"],
        batch_size=model_cfg["batch_size"],
        seed=model_cfg["seed"],
        width=float(model_cfg["width"]),
        learning_rate=float(model_cfg["learning_rate"]),
        lr_schedule=model_cfg["lr_schedule"],
        augment=model_cfg["augment"],
    ).validate()
    mode = model_cfg["mode"]
    source = data.resolve(recipe.dataset, data_path)
    data_id = fsutil.sha256_file(source) if source else f"download:{recipe.dataset}"
    key = recipe.key(f"{data_id}|cal={model_cfg['calibration_samples']}")
    folder = stage.cache_root() / "models" / key
    artifact = folder / convert.artifact_name(mode)
    if artifact.is_file() and convert.manifest_entry(artifact):
        _say(progress, f"reusing {artifact} (recipe {key})")
        return artifact
    if not (folder / "model.keras").is_file():
        _say(progress, f"training {recipe.epochs} epoch(s) on {recipe.dataset} (recipe {key})")
        train(recipe, folder, data_path, progress=train_progress)
    modes = sorted({mode, "float32"}, key=convert.MODES.index)
    _say(progress, f"converting to {', '.join(modes)}")
    convert.convert(
        folder / "model.keras",
        modes,
        folder,
        model_cfg["calibration_samples"],
        recipe.dataset,
        data_path,
    )
    return artifact


def dataset_of(artifact: Path, default: str = "mnist") -> str:
    """The dataset an artifact was made for, from its manifest (else `default`)."""
    entry = convert.manifest_entry(Path(artifact)) if Path(artifact).is_file() else None
    return (entry or {}).get("dataset") or default


def resolve_artifact(path: Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"artifact not found: {p}")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelError(
            f"{p}: not a TFLite flatbuffer (no TFL3 identifier); use a .tflite from `edgeq convert`"
        )
    return p


def host_reference(
    artifact: Path, eval_npz: Path, progress: Progress | None = None
) -> tuple[float | None, str | None]:
    """Host accuracy of the float32 model the artifact came from, on the same data (cached)."""
    from edgeq_device import edgeq_runner as runner

    entry = convert.manifest_entry(artifact)
    if entry and entry["mode"] == "float32":
        ref = artifact
    else:
        ref = artifact.with_name(convert.artifact_name("float32"))
        ref_entry = convert.manifest_entry(ref) if ref.is_file() else None
        if not (
            entry and ref_entry and ref_entry["source_model_sha256"] == entry["source_model_sha256"]
        ):
            return None, None
    key = f"{fsutil.sha256_file(ref)}|{fsutil.sha256_file(eval_npz)}|{__version__}"
    cache = stage.cache_root() / "host-reference.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key], str(ref)
    _say(progress, f"evaluating the float32 reference {ref.name} on the host")
    x, y, scale, offset = runner.load_eval_data(str(eval_npz))
    cls, _, _ = runner.find_interpreter()
    interp = runner.make_interpreter(cls, str(ref))
    interp.allocate_tensors()
    acc = runner.evaluate_accuracy(
        interp,
        x,
        y,
        runner.DEFAULT_INPUT_SCALE if scale is None else scale,
        runner.DEFAULT_INPUT_OFFSET if offset is None else offset,
    )
    known[key] = acc["top1"]
    try:
        fsutil.write_json(cache, known)
    except UsageError:
        pass
    return acc["top1"], str(ref)


# --------------------------------------------------------------------------- measuring


def measure(
    target: Target,
    artifact: Path,
    eval_npz: Path | None,
    settings: RunSettings,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Push what is missing, run the device runner, pull and validate its JSON.

    Returns (run document, transfer/timing facts). The target is opened and closed here
    (its per-run workdir removed unless the target keeps it). An adb target with a
    benchmark_model binary is measured by that tool instead (`edgeq_android.driver`).
    """
    if target.transport == "adb":
        from edgeq_android import driver as android

        binary = android.resolve_binary(settings.benchmark_binary, target.config)
        if binary is not None:
            return android.measure(target, artifact, eval_npz, settings, binary, progress)
    t0 = time.perf_counter()
    with target:
        _say(progress, f"connected to {target.name} ({target.describe()})")
        remote_runner = target.ensure_file(stage.runner_path(), ".py")
        remote_model = target.ensure_file(artifact, ".tflite")
        remote_data = target.ensure_file(eval_npz, ".npz") if eval_npz else None
        _say(progress, f"sent {target.bytes_sent:,} bytes")
        workdir = target.workdir
        out_remote = f"{workdir}/result.json"
        argv = [
            *target.python_argv(),
            remote_runner,
            remote_model,
            "--out",
            out_remote,
            *settings.runner_args(),
        ]
        if remote_data:
            argv += ["--data", remote_data]
        if settings.eval_limit:
            argv += ["--limit", str(settings.eval_limit)]
        _say(progress, f"running the benchmark on {target.name}")
        t_run = time.perf_counter()
        res = target.run(argv, timeout=settings.timeout, check=False, killable=True)
        run_s = time.perf_counter() - t_run
        text = _pull_text(target, out_remote)
        doc = _interpret(target, res, text)
        if target.keep:
            _say(progress, f"kept the workdir {workdir} on {target.name}")
    facts = {
        "bytes_sent": target.bytes_sent,
        "files": target.files_sent,
        "runner_process_s": run_s,
        "total_s": time.perf_counter() - t0,
        "workdir": workdir,
        "kept": target.keep,
    }
    return doc, facts


def _pull_text(target: Target, remote: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="edgeq-pull-") as tmp:
        local = Path(tmp) / "result.json"
        try:
            target.get(remote, local)
        except (CommandError, OSError):
            return None
        return local.read_text(errors="replace")


def _interpret(target: Target, res: Any, text: str | None) -> dict[str, Any]:
    origin = target.name
    if text is None and res.exit_code == 127:
        raise RunnerError(
            f"{origin}: python {target.config.get('python')!r} not found on the device "
            f'(exit 127); install python3 there or set python = "..." in '
            f"[targets.{target.name}]"
        )
    if text is None:
        text = res.stdout
    if res.exit_code != 0:
        msg = None
        try:
            doc = json.loads(text)
            err = doc.get("error") or {}
            msg = err.get("message")
            hint = err.get("hint")
            if hint:
                msg = f"{msg}; {hint}"
        except (ValueError, AttributeError, TypeError):
            pass
        stderr_tail = tail(res.stderr, 3)
        detail = msg or "no result document"
        if res.exit_code > 128 and not msg:
            import signal

            try:
                detail = f"killed by {signal.Signals(res.exit_code - 128).name}, {detail}"
            except ValueError:
                pass
        raise RunnerError(
            f"{origin}: the runner failed (exit {res.exit_code}): {detail}"
            + (f" — device stderr: {stderr_tail}" if stderr_tail and not msg else ""),
            details={"exit_status": res.exit_code, "stderr_tail": tail(res.stderr)},
        )
    return parse_run(text, origin)


# --------------------------------------------------------------------------- deploy


def deploy(
    target_cfg: TargetConfig,
    artifact: Path,
    dataset: str = "mnist",
    data_path: Path | None = None,
    budget: Budget | None = None,
    settings: RunSettings | None = None,
    keep: bool = False,
    results_dir: Path | None = Path("results"),
    progress: Progress | None = None,
    with_data: bool = True,
) -> DeployResult:
    """Measure `artifact` on the target and judge it (budget None: measure only)."""
    settings = (settings or RunSettings()).validate()
    artifact = resolve_artifact(artifact)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    eval_npz = None
    if with_data:
        _say(progress, f"staging the {dataset} test split")
        eval_npz = stage.eval_data(dataset, data_path, settings.eval_limit)
    ref_top1, ref_path = (None, None)
    if budget is not None and eval_npz is not None:
        ref_top1, ref_path = host_reference(artifact, eval_npz, progress)
    target = make_target(target_cfg, keep=keep)
    run, facts = measure(target, artifact, eval_npz, settings, progress)
    if run["model"]["sha256"] != fsutil.sha256_file(artifact):
        raise RunnerError(
            f"{target_cfg.name}: the device ran a different model than sent "
            f"(sha256 mismatch); clear its cache folder {target.cache_dir}"
        )
    verdict = judge(budget, run, ref_top1) if budget is not None else None
    total = time.perf_counter() - t0
    measured = sum(v for v in run.get("phases_ms", {}).values() if v) / 1000
    if run.get("accuracy"):
        measured += run["accuracy"].get("seconds") or 0.0
    entry = convert.manifest_entry(artifact)
    result = DeployResult(
        target={
            "name": target_cfg.name,
            "transport": target_cfg.transport,
            "address": target.describe(),
        },
        artifact={
            "path": str(artifact),
            "sha256": run["model"]["sha256"],
            "bytes": run["model"]["bytes"],
            "mode": entry["mode"] if entry else None,
            "dataset": dataset,
        },
        run=run,
        verdict=verdict,
        transfer={"bytes_sent": facts["bytes_sent"], "files": facts["files"]},
        timing={
            "total_s": total,
            "runner_process_s": facts["runner_process_s"],
            "device_measure_s": measured,
            "orchestration_s": total - measured,
        },
        host={
            "float32_reference": ref_path,
            "float32_reference_top1": ref_top1,
            "budget": budget.to_dict() if budget else None,
            "settings": asdict(settings),
        },
        started_utc=started,
        finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if results_dir is not None:
        path = result.save(results_dir)
        _say(progress, f"saved {path}")
        result.host["saved_to"] = str(path)
    return result
