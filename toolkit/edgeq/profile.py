"""Where the time goes on the device: the per-operator profile, joinable with `inspect`.

The profile is `benchmark_model --enable_op_profiling=true` run on the device (the LiteRT
Python API has no op profiler, so a target whose runner is `python` gets the native
binary pushed alongside when one is configured for it, and a usage error saying so when
none is). The tool's "Run Order" table (every node, executed order) becomes one row per
node: its op type, the tensor names the converter gave it, the Keras layers those names
mention (when the model came from edgeq: the layer names of the `.keras` its manifest
names, the names `edgeq inspect` uses), avg ms, % and cumulative % of the profiled time,
times called — sorted by time.

A delegated subgraph is not a model node: XNNPACK's profiler reports its own operators
(`Delegate/Convolution (NHWC, F32) IGEMM:0`, numbered inside the delegate), older builds
one `TfLiteXNNPackDelegate` node. Those rows are flagged `delegated` and carry no layer:
the mapping back to the model's nodes is the delegate's, not printed.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import manifest

PROFILE_SCHEMA = "edgeq.profile/1"

__all__ = [
    "PROFILE_SCHEMA",
    "OpRow",
    "Profile",
    "from_run",
    "keras_layer_names",
    "layers_in",
    "plot",
]

_NAME = re.compile(r"^\[(?P<tensors>.*)\]:(?P<index>\d+)$")
_DELEGATE_TYPES = ("TfLiteXNNPackDelegate", "TfLiteGpuDelegate", "NnapiDelegate", "DELEGATE")


@dataclass
class OpRow:
    """One node of the profile."""

    node: int | None
    type: str
    tensors: list[str]
    layers: list[str]
    avg_ms: float
    percent: float
    cum_percent: float = 0.0
    first_ms: float | None = None
    times_called: int | None = None
    delegated: bool = False

    @property
    def label(self) -> str:
        """What a person calls it: the first Keras layer, else the shortest tensor name,
        else the delegate's operator."""
        if self.layers:
            return self.layers[0]
        if self.delegated:
            return "delegated subgraph"
        if self.tensors:
            return min(self.tensors, key=len)
        return f"{self.type.lower()}@{self.node}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


@dataclass
class Profile:
    """A per-operator profile: the rows sorted by time and what it was measured on."""

    rows: list[OpRow]
    total_ms: float
    model: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    latency_ms: dict[str, Any] = field(default_factory=dict)
    layer_source: str = "tensor names"
    notes: list[str] = field(default_factory=list)

    @property
    def delegated(self) -> bool:
        return any(r.delegated for r in self.rows)

    def by_layer(self) -> dict[str, float]:
        """avg ms per Keras layer (a fused op's time goes to each layer it names once,
        to its first layer: the name `inspect` uses for the op)."""
        out: dict[str, float] = {}
        for r in self.rows:
            if r.layers:
                out[r.layers[0]] = out.get(r.layers[0], 0.0) + r.avg_ms
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PROFILE_SCHEMA,
            "model": self.model,
            "device": self.device,
            "latency_ms": self.latency_ms,
            "total_ms": self.total_ms,
            "layer_source": self.layer_source,
            "delegated": self.delegated,
            "notes": self.notes,
            "rows": [r.to_dict() for r in self.rows],
        }


# --------------------------------------------------------------------------- layers


def keras_layer_names(artifact: Path) -> list[str] | None:
    """The Keras layer names of the model `artifact` was converted from, in model order,
    when its manifest names a `.keras` source that still exists (read from the archive's
    config.json: no TensorFlow needed). None otherwise."""
    entry = manifest.manifest_entry(Path(artifact))
    source = Path(str((entry or {}).get("source_model") or ""))
    if not entry:
        return None
    return keras_file_layer_names(source)


def keras_file_layer_names(source: Path) -> list[str] | None:
    """The layer names of a `.keras` file, in model order (None if it is not one)."""
    source = Path(source)
    if source.suffix != ".keras" or not source.is_file():
        return None
    try:
        with zipfile.ZipFile(source) as z:
            config = json.loads(z.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    layers = (config.get("config") or {}).get("layers") or []
    names = []
    for layer in layers:
        name = (layer.get("config") or {}).get("name") or layer.get("name")
        if isinstance(name, str):
            names.append(name)
    return names or None


def layers_in(tensors: list[str], layer_names: list[str]) -> list[str]:
    """The Keras layers fused tensor names mention (`model_1/conv1_1/convolution` →
    conv1), in model order — the rule `inspect` uses for the debugger's tensor names."""
    known = set(layer_names)
    found: set[str] = set()
    for name in tensors:
        for part in name.split("/"):
            for cand in (part, re.sub(r"_\d+$", "", part)):
                if cand in known:
                    found.add(cand)
    return [n for n in layer_names if n in found]


def _split_name(raw: Any) -> tuple[list[str], int | None, bool]:
    """(tensor names, node index, delegated) from the tool's [Name] cell."""
    text = str(raw or "")
    m = _NAME.match(text)
    if m:
        return [t for t in m.group("tensors").split(";") if t], int(m.group("index")), False
    if text.startswith("Delegate/"):
        head, _, idx = text.rpartition(":")
        return [], int(idx) if idx.isdigit() else None, True
    head, _, idx = text.rpartition(":")
    if idx.isdigit() and head:
        return [t for t in head.strip("[]").split(";") if t], int(idx), False
    return ([text] if text else []), None, False


# --------------------------------------------------------------------------- building


def from_run(
    run: dict[str, Any], artifact: Path | None = None, layer_names: list[str] | None = None
) -> Profile | None:
    """The profile of an `edgeq.run/1` document (None when it has no op profile);
    `layer_names`: the Keras layers to map nodes to (default: from the artifact's manifest)."""
    op = run.get("op_profile") or {}
    table = op.get("run_order") or op.get("top_by_time") or []
    if not table:
        return None
    names = layer_names or (keras_layer_names(artifact) if artifact is not None else None)
    rows = []
    for entry in table:
        tensors, index, delegated = _split_name(entry.get("name"))
        kind = str(entry.get("type") or "?")
        delegated = delegated or kind.startswith(_DELEGATE_TYPES)
        layers: list[str] = []
        if names and not delegated:
            layers = layers_in(tensors, names)
            if not layers and any(t.startswith("StatefulPartitionedCall") for t in tensors):
                layers = [names[-1]]  # the graph output keeps the signature's name
        avg, first = entry.get("avg_ms"), entry.get("first_ms")
        rows.append(
            OpRow(
                node=index,
                type=kind,
                tensors=tensors,
                layers=layers,
                avg_ms=float(avg) if isinstance(avg, (int, float)) else 0.0,
                percent=float(entry.get("percent") or 0.0),
                first_ms=first if isinstance(first, float) else None,
                times_called=entry.get("times_called"),
                delegated=delegated,
            )
        )
    total = sum(r.avg_ms for r in rows)
    if not any(r.percent for r in rows) and total > 0:
        for r in rows:
            r.percent = 100.0 * r.avg_ms / total
    rows.sort(key=lambda r: (-r.avg_ms, -r.percent, r.node if r.node is not None else 0))
    cum = 0.0
    for r in rows:
        cum += r.percent
        r.cum_percent = min(cum, 100.0)
    model = run.get("model") or {}
    env = run.get("environment") or {}
    inv = (run.get("latency_ms") or {}).get("invoke") or {}
    notes = []
    if any(r.delegated for r in rows):
        notes.append(
            "delegated: the delegate's own operators (numbered inside the delegate) or one "
            "node for the whole delegated subgraph; their time is not mapped to the model's "
            "layers"
        )
    if names is None:
        notes.append("layers: tensor names (the model did not come from edgeq's convert)")
    if op.get("source"):
        notes.append(f"profile: {op['source']}")
        inv = {}  # the run's latency is the other runner's, not the profiled runs
    return Profile(
        rows=rows,
        total_ms=total,
        model={
            "file": artifact.name if artifact is not None else model.get("path"),
            "sha256": model.get("sha256"),
            "bytes": model.get("bytes"),
        },
        device={
            "machine": env.get("cpu_abi") or env.get("machine"),
            "os": env.get("os"),
            "device_model": env.get("device_model"),
            "emulated": env.get("emulated"),
            "threads": env.get("threads"),
            "delegates": [d.get("name") for d in (run.get("delegates") or [])],
        },
        latency_ms={k: inv.get(k) for k in ("mean", "p50", "min") if k in inv},
        layer_source="Keras layer names (from the model's manifest)" if names else "tensor names",
        notes=notes,
    )


# --------------------------------------------------------------------------- rendering


def table_rows(p: Profile, top: int | None = None) -> list[list[str]]:
    """The rows as text cells: node, op, layer, avg ms, %, cum %, calls."""
    out = []
    for r in p.rows[: top or None]:
        out.append(
            [
                "-" if r.node is None else (f"d{r.node}" if r.delegated else str(r.node)),
                r.type,
                r.label + (f" (+{', '.join(r.layers[1:])})" if len(r.layers) > 1 else ""),
                f"{r.avg_ms:.3f}",
                f"{r.percent:.1f}",
                f"{r.cum_percent:.1f}",
                "-" if r.times_called is None else str(r.times_called),
            ]
        )
    return out


TABLE_HEADER = ["node", "op", "layer / tensor", "avg ms", "%", "cum %", "calls"]


def plot(p: Profile, path: Path, title: str = "", top: int = 15) -> Path:
    """A horizontal bar chart of the `top` nodes by time (matplotlib, Agg)."""
    from .plotting import plt, save_figure

    rows = p.rows[:top]
    labels = [
        f"{r.label} · {r.type}" if len(r.label) < 40 else f"{r.label[:37]}… · {r.type}"
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(rows) + 1.6), dpi=110)
    colors = ["#c0504d" if r.delegated else "#4f81bd" for r in rows]
    bars = ax.barh(range(len(rows)), [r.avg_ms for r in rows], color=colors)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("avg ms per inference (benchmark_model --enable_op_profiling)")
    for bar, r in zip(bars, rows, strict=True):
        ax.text(
            bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {r.percent:.1f} %",
            va="center", fontsize=7,
        )  # fmt: skip
    ax.set_title(title or f"where the time goes: {p.model.get('file')}", fontsize=10)
    ax.margins(x=0.15)
    if p.delegated:
        ax.text(
            0.99, 0.01, "red: delegated (XNNPACK) — not mapped to layers",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="#c0504d",
        )  # fmt: skip
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    return path


# --------------------------------------------------------------------------- measuring


def profiling_runner(tcfg: Any, settings: Any) -> Any:
    """The native runner for a profile, whatever runner the target measures with: the
    binary goes alongside the Python runner when the target has one configured."""
    from .errors import UsageError
    from .runners.benchmark_model import NIGHTLY_URL, BenchmarkModelRunner, resolve_binary

    if resolve_binary(settings, tcfg) is None:
        raise UsageError(
            f"{tcfg.name}: a per-operator profile needs TFLite's native benchmark_model on the "
            f"device (the LiteRT Python API has no op profiler); set benchmark_binary in "
            f"{tcfg.where} or pass --benchmark-binary (builds: "
            f"{NIGHTLY_URL.format(flavour='android_aarch64')})"
        )
    return BenchmarkModelRunner(tcfg, settings.with_(op_profiling=True).validate())


def measure(
    tcfg: Any,
    artifact: Path,
    settings: Any,
    progress: Any = None,
    wait: bool = True,
    layer_names: list[str] | None = None,
) -> tuple[Profile, dict[str, Any]]:
    """Profile `artifact` on the target (under the device's lock): (profile, run doc).
    The host checks the file and the device's runtime the operators before sending it."""
    from . import compat
    from .deploy import device_lock
    from .errors import RunnerError, UsageError
    from .runners import Job
    from .targets import make_target

    artifact = Path(artifact)
    if not artifact.is_file():
        raise UsageError(f"model not found: {artifact}")
    compat.model_ops(artifact)  # a file that is not a .tflite stops here, on the host
    runner = profiling_runner(tcfg, settings)
    lock = device_lock(tcfg, wait=wait)
    with lock.acquire(lambda msg: progress and progress(f"{tcfg.name}: {msg}")):
        target = make_target(tcfg)
        got = runner.measure(target, Job(artifact, None, runner.settings), progress)
    prof = from_run(got.run, artifact, layer_names)
    if prof is None:
        raise RunnerError(
            f"{tcfg.name}: benchmark_model printed no op profile (no `Run Order` table); is "
            f"the binary a build with profiling (--enable_op_profiling)?"
        )
    return prof, got.run


# --------------------------------------------------------------------------- the join

#: A layer whose int8 time is at least this share of the model's is "costly".
COSTLY_PERCENT = 20.0


def join_layers(layers: list[Any], float_prof: Profile, int8_prof: Profile) -> list[dict[str, Any]]:
    """`inspect`'s per-layer rows (worst error first) with each layer's device time in
    float32 and in int8 (the ops whose first Keras layer it is), and whether it is costly
    (≥ COSTLY_PERCENT % of the int8 time) and lossy (inspect says keep it in float)."""
    f_ms, q_ms = float_prof.by_layer(), int8_prof.by_layer()
    q_total = int8_prof.total_ms or 1.0
    out = []
    for r in layers:
        q = q_ms.get(r.name)
        share = 100.0 * q / q_total if q is not None else None
        costly = share is not None and share >= COSTLY_PERCENT
        out.append(
            {
                "name": r.name,
                "op": r.op,
                "rmse_over_scale": r.rmse_over_scale,
                "lossy": bool(r.keep_float),
                "float32_ms": f_ms.get(r.name),
                "int8_ms": q,
                "int8_percent": share,
                "costly": costly,
                "float_costs_ms": (f_ms[r.name] - q) if r.name in f_ms and q is not None else None,
            }
        )
    return out
