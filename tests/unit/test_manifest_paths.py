"""edgeq.manifest (entries, the float32-sibling rule, the training dataset), edgeq.paths and
edgeq.progress: the small shared pieces below the model side."""

from __future__ import annotations

import json

from edgeq import fsutil, manifest, paths, progress


def _artifacts(folder, sources):
    """Fake artifacts with a manifest: {mode: source model sha256}."""
    entries = []
    for mode, source in sources.items():
        f = folder / manifest.artifact_name(mode)
        f.write_bytes(f"{mode}-{source}".encode())
        entries.append(
            {
                "file": f.name,
                "mode": mode,
                "sha256": fsutil.sha256_file(f),
                "source_model_sha256": source,
            }
        )
    (folder / manifest.MANIFEST).write_text(
        json.dumps({"schema": manifest.MANIFEST_SCHEMA, "artifacts": entries})
    )


def test_float32_sibling_is_the_same_source_models_float32(tmp_path):
    _artifacts(tmp_path, {"float32": "aaa", "int8": "aaa"})
    f32, q = tmp_path / "model_float32.tflite", tmp_path / "model_int8.tflite"
    assert manifest.float32_sibling(q) == f32
    assert manifest.float32_sibling(f32) == f32


def test_no_sibling_for_another_source_model_or_without_a_manifest(tmp_path):
    _artifacts(tmp_path, {"float32": "aaa", "int8": "bbb"})
    assert manifest.float32_sibling(tmp_path / "model_int8.tflite") is None
    loose = tmp_path / "other" / "model_int8.tflite"
    loose.parent.mkdir()
    loose.write_bytes(b"x")
    assert manifest.float32_sibling(loose) is None


def test_an_entry_counts_only_while_its_sha256_matches(tmp_path):
    _artifacts(tmp_path, {"float32": "aaa", "int8": "aaa"})
    q = tmp_path / "model_int8.tflite"
    assert manifest.manifest_entry(q)["mode"] == "int8"
    q.write_bytes(b"changed")
    assert manifest.manifest_entry(q) is None
    assert manifest.float32_sibling(q) is None


def test_dataset_of_reads_metrics_json_else_mnist(tmp_path):
    model = tmp_path / "model.keras"
    assert manifest.dataset_of(model) == "mnist"
    (tmp_path / "metrics.json").write_text(json.dumps({"dataset": "fashion_mnist"}))
    assert manifest.dataset_of(model) == "fashion_mnist"


def test_cache_root_and_runner_path(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEQ_CACHE_DIR", str(tmp_path / "c"))
    assert paths.cache_root() == tmp_path / "c"
    monkeypatch.delenv("EDGEQ_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert paths.cache_root() == tmp_path / "x" / "edgeq"
    runner = paths.runner_path()
    assert runner.name == "edgeq_runner.py" and runner.is_file()


def test_say_tells_the_callback_if_there_is_one():
    heard: list[str] = []
    progress.say(heard.append, "hello")
    progress.say(None, "nobody")
    assert heard == ["hello"]
