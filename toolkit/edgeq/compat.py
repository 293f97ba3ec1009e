"""Compatibility before the push: the operators a .tflite needs vs what a runtime has.

What the model needs comes from the flatbuffer alone (its `operator_codes`: builtin
operator and version, or a custom op's name), read with the schema module LiteRT ships
(`ai_edge_litert.schema_py_generated`); nothing is loaded into an interpreter.

What a runtime has is asked of the runtime itself, not looked up in a table: for every
(operator, version) the model needs, a probe model of a few hundred bytes is built on this
host — the operator code alone for a builtin (an interpreter resolves every operator code
when it builds the graph: "Didn't find op for builtin opcode 'X' version 'N'"), or one node
using it for a custom op (an unresolved custom op fails at allocate_tensors) — and the
device's interpreter loads it: the device's python with the interpreter edgeq's runner
picks, or the device's `benchmark_model`. The answers are cached on this host per runtime
(package + version, or the binary's sha256), so a runtime is probed once per operator
version ever, and the model itself is never sent before the check passes.

A model that needs what the runtime lacks is a `ModelError` (exit 2, the same in `eval`,
`bench`, `deploy` and the lab, which records it as a model error and keeps the device).
"""

from __future__ import annotations

import base64
import json
import os
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths
from .errors import ModelError, UsageError

__all__ = [
    "OpCode",
    "UnsupportedOp",
    "check_ops",
    "model_ops",
    "probe_model",
]

CACHE_SCHEMA = "edgeq.compat-cache/1"


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _builtin_names() -> dict[int, str]:
    ops = _schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True, order=True)
class OpCode:
    """One operator code of a model: a builtin (name, code) or a custom op (name)."""

    name: str
    version: int
    custom: bool = False
    code: int = -1

    @property
    def key(self) -> str:
        return f"custom:{self.name}" if self.custom else f"{self.name}:v{self.version}"

    def describe(self) -> str:
        return f"custom op {self.name}" if self.custom else f"{self.name} v{self.version}"


def model_ops(model: Path | bytes) -> list[OpCode]:
    """The operator codes a .tflite declares (from the flatbuffer; no interpreter)."""
    buf = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    where = str(model) if isinstance(model, (str, Path)) else "the model"
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError(f"{where} is not a TFLite model (no TFL3 flatbuffer identifier)")
    schema = _schema()
    names = _builtin_names()
    try:
        m = schema.Model.GetRootAs(buf, 0)
        codes = []
        for i in range(m.OperatorCodesLength()):
            oc = m.OperatorCodes(i)
            code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
            version = int(oc.Version()) or 1
            if code == schema.BuiltinOperator.CUSTOM:
                raw = oc.CustomCode()
                name = raw.decode(errors="replace") if raw else "?"
                codes.append(OpCode(name, version, True, code))
            else:
                codes.append(OpCode(names.get(code, f"BUILTIN_{code}"), version, False, code))
    except Exception as exc:  # a truncated or corrupt flatbuffer
        raise ModelError(f"{where}: cannot read its operator codes ({exc})") from None
    return sorted(set(codes))


def probe_model(op: OpCode) -> bytes:
    """A tiny model that an interpreter can load only if it has `op` (see the module doc)."""
    import flatbuffers

    schema = _schema()
    oc = schema.OperatorCodeT()
    oc.version = op.version
    if op.custom:
        oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        oc.customCode = op.name
    else:
        oc.builtinCode = op.code
        oc.deprecatedBuiltinCode = min(op.code, 127)
    tensors = []
    for i in range(2 if op.custom else 1):
        t = schema.TensorT()
        t.shape = [1]
        t.type = schema.TensorType.FLOAT32
        t.buffer = 0
        t.name = f"t{i}"
        tensors.append(t)
    sg = schema.SubGraphT()
    sg.tensors = tensors
    sg.inputs = [0]
    sg.outputs = [len(tensors) - 1]
    sg.operators = []
    if op.custom:
        node = schema.OperatorT()
        node.opcodeIndex = 0
        node.inputs = [0]
        node.outputs = [1]
        sg.operators = [node]
    model = schema.ModelT()
    model.version = 3
    model.operatorCodes = [oc]
    model.subgraphs = [sg]
    model.buffers = [schema.BufferT()]
    model.description = f"edgeq compat probe {op.key}"
    b = flatbuffers.Builder(256)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


# --------------------------------------------------------------------------- the answers


def _cache_file(runtime_key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in runtime_key)[:120]
    return paths.cache_root() / "compat" / f"{safe}.json"


def _load_cache(runtime_key: str) -> dict[str, str | None]:
    p = _cache_file(runtime_key)
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("schema") != CACHE_SCHEMA:
        return {}
    answers = doc.get("answers")
    return answers if isinstance(answers, dict) else {}


def _save_cache(runtime_key: str, answers: dict[str, str | None]) -> None:
    p = _cache_file(runtime_key)
    try:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        doc = {"schema": CACHE_SCHEMA, "runtime": runtime_key, "answers": answers}
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.chmod(tmp, 0o600)
        tmp.replace(p)
    except OSError:
        pass  # a cache that cannot be written costs a probe next time, nothing else


class UnsupportedOp(ModelError):
    """The model needs an operator (or a version of one) the runtime does not have."""


def fix_for(op: OpCode, runtime: str) -> str:
    if op.custom:
        return (
            f"build {runtime} with the op registered (or a runtime that has it), or convert "
            f"the model without the custom op"
        )
    return (
        f"upgrade the device's runtime (e.g. `python3 -m pip install -U ai-edge-litert`, or a "
        f"newer benchmark_model), or convert with a mode/TF version that emits "
        f"{op.name} at an older version"
    )


def check_ops(
    model: Path,
    runtime: str,
    runtime_key: str,
    load: Callable[[list[bytes]], list[str | None]],
    where: str = "",
    when: str = "before sending the model",
    also: str = "",
) -> list[OpCode]:
    """Check every operator `model` needs against a runtime; ModelError (exit 2) naming the
    first missing op, its version, the runtime and the fix. `load(probe models)` asks the
    runtime to load each probe model and answers None (loaded) or the error text; only
    the (op, version) pairs not yet cached for `runtime_key` are asked; `also`: another
    fix, said after the usual ones. Returns the ops."""
    ops = model_ops(model)
    answers = _load_cache(runtime_key)
    missing = [op for op in ops if op.key not in answers]
    if missing:
        got = load([probe_model(op) for op in missing])
        if len(got) != len(missing):
            raise UsageError(
                f"{runtime}: the compatibility probe answered {len(got)} of "
                f"{len(missing)} probe models"
            )
        for op, err in zip(missing, got, strict=True):
            answers[op.key] = err
        _save_cache(runtime_key, answers)
    for op in ops:
        err = answers.get(op.key)
        if err:
            prefix = f"{where}: " if where else ""
            what = op.describe() if op.custom else f"operator {op.describe()}"
            said = _short(err.split(". ")[0], 110)
            raise UnsupportedOp(
                f"{prefix}{model} needs {what}, which {runtime} does not have "
                f"(checked {when}: {said}); {fix_for(op, runtime)}"
                + (f"; or {also}" if also else "")
            )
    return ops


def _short(text: str, limit: int = 160) -> str:
    one = " ".join(str(text).split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


# --------------------------------------------------------------------------- the runtimes

#: Runs on the device's python: load each probe model with the interpreter edgeq's
#: runner picks (argv[1] is the runner), print one JSON line.
_PY_PROBE = (
    "import base64,json,sys,importlib.util as u\n"
    "s=u.spec_from_file_location('edgeq_runner_compat',sys.argv[1])\n"
    "m=u.module_from_spec(s);s.loader.exec_module(m)\n"
    "cls,name,ver=m.find_interpreter()\n"
    "out=[]\n"
    "for b in sys.argv[2:]:\n"
    "    try:\n"
    "        i=cls(model_content=base64.b64decode(b));i.allocate_tensors();out.append(None)\n"
    "    except Exception as e:\n"
    "        out.append(m._one_line(e) or type(e).__name__)\n"
    "print(json.dumps({'runtime':name,'version':ver,'results':out},separators=(',',':')))\n"
)


def python_loader(target: Any, remote_runner: str) -> Callable[[list[bytes]], list[str | None]]:
    """`load` for a device python: the probe models travel on the command line (base64)."""
    from .errors import RunnerError, tail

    def load(models: list[bytes]) -> list[str | None]:
        argv = [*target.python_argv(), "-c", _PY_PROBE, remote_runner]
        argv += [base64.b64encode(m).decode() for m in models]
        res = target.run(argv, timeout=120, check=False, killable=True)
        try:  # the last answer in the output (a noisy login may print before it)
            start = res.stdout.rindex('{"runtime"')
            doc, _ = json.JSONDecoder().raw_decode(res.stdout, start)
            return list(doc["results"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise RunnerError.of(
                f"{target.name}: the operator probe did not answer (exit {res.exit_code}): "
                f"{tail(res.stderr or res.stdout) or 'no output'}",
                res,
            ) from None

    return load


def binary_loader(target: Any, remote_binary: str) -> Callable[[list[bytes]], list[str | None]]:
    """`load` for a device's benchmark_model: each probe model (a few hundred bytes) is
    written into the workdir and run once; the tool's error line is the answer."""
    import tempfile

    from .errors import tail

    def load(models: list[bytes]) -> list[str | None]:
        out: list[str | None] = []
        with tempfile.TemporaryDirectory(prefix="edgeq-compat-") as tmp:
            for i, blob in enumerate(models):
                local = Path(tmp) / f"probe{i}.tflite"
                local.write_bytes(blob)
                remote = f"{target.workdir}/compat-probe{i}.tflite"
                target.put(local, remote)
                cmd = (
                    f"{shlex.quote(remote_binary)} --graph={shlex.quote(remote)} --num_runs=1 "
                    f"--warmup_runs=0 --min_secs=0 --warmup_min_secs=0 2>&1"
                )
                res = target.run(cmd, timeout=120, check=False)
                target.run(["rm", "-f", remote], timeout=30, check=False)
                if res.exit_code == 0:
                    out.append(None)
                    continue
                lines = res.stdout.splitlines()
                said = [ln for ln in lines if "find op" in ln or "unresolved custom op" in ln]
                said = said or [ln for ln in lines if "ERROR" in ln][-1:]
                out.append(tail(said[0] if said else res.stdout, 1) or f"exit {res.exit_code}")
        return out

    return load


def check_on_python(
    target: Any,
    remote_runner: str,
    env: dict[str, Any],
    model: Path,
    role: str = "",
    also: str = "",
) -> None:
    """Check `model` against the device python's interpreter (`env`: its probe); `role`:
    what that python is for, when it is not the runner (said after the runtime); `also`:
    another fix."""
    runtime = f"{env.get('runtime')} {env.get('runtime_version') or ''}".strip()
    key = f"py-{env.get('runtime')}-{env.get('runtime_version')}-{env.get('machine')}"
    check_ops(
        model,
        f"{target.name}'s {runtime}{role}",
        key,
        python_loader(target, remote_runner),
        target.name,
        also=also,
    )


def check_on_binary(target: Any, remote_binary: str, binary_sha256: str, model: Path) -> None:
    """Check `model` against the device's benchmark_model (cached per binary sha256)."""
    check_ops(
        model,
        f"{target.name}'s benchmark_model (sha256 {binary_sha256[:12]})",
        f"bm-{binary_sha256}",
        binary_loader(target, remote_binary),
        target.name,
    )


def local_loader(interpreter_cls: Any) -> Callable[[list[bytes]], list[str | None]]:
    """`load` for an interpreter in this process (`edgeq eval`)."""

    def load(models: list[bytes]) -> list[str | None]:
        out: list[str | None] = []
        for blob in models:
            try:
                interp = interpreter_cls(model_content=blob)
                interp.allocate_tensors()
                out.append(None)
            except Exception as exc:  # the runtime's own words are the answer
                out.append(" ".join(str(exc).split()) or type(exc).__name__)
        return out

    return load


def check_on_host(model: Path, interpreter_cls: Any, runtime: str) -> None:
    """Check `model` against this host's interpreter (what `edgeq eval` runs)."""
    check_ops(
        model,
        f"this host's {runtime}",
        f"host-{runtime}",
        local_loader(interpreter_cls),
        when="with probe models before loading it",
    )


def describe(ops: Iterable[OpCode]) -> str:
    return ", ".join(op.describe() for op in ops)
