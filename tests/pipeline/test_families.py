"""Model families behind the [model] recipe, and reproducible training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeq import config, convert, models, tfenv, train
from edgeq.errors import ConfigError, UsageError


def test_the_book_cnn_stays_the_default_with_35210_parameters():
    assert models.DEFAULT_FAMILY == "book" and train.Recipe().family == "book"
    assert models.build().count_params() == models.BOOK_CNN_PARAMS == 35_210
    assert train.Recipe().build((28, 28, 1), 10).count_params() == 35_210


@pytest.mark.parametrize(
    ("family", "width", "params"), [("bngap", 1.0, 7602), ("bngap", 0.75, 4384)]
)
def test_compact_families_fit_tiny_budgets(family, width, params):
    assert models.build(family, width).count_params() == params


@pytest.mark.parametrize("family", [f for f in models.FAMILIES if f != "book"])
def test_every_family_trains_and_converts(family, tmp_path, data_dir):
    from tensorflow.python.framework import config as tf_config

    before = tf_config.is_op_determinism_enabled()
    res = train.train(
        train.Recipe(epochs=1, batch_size=64, limit=300, family=family, width=0.5),
        tmp_path,
        data_dir / "mnist.npz",
        deterministic=False,
    )
    assert tf_config.is_op_determinism_enabled() == before  # the process setting is restored
    m = res.metrics
    assert m["family"] == family and m["recipe"]["family"] == family
    assert m["params"] == models.build(family, 0.5).count_params()
    assert 0.0 <= m["test_accuracy"] <= 1.0 and m["deterministic"] is False
    manifest = convert.convert(
        res.model_path, ["float32", "int8"], tmp_path, 50, data_path=data_dir
    )
    int8 = manifest["artifacts"][-1]
    assert int8["mode"] == "int8" and int8["input"]["dtype"] == "int8"
    assert int8["bytes"] < 16 * 1024  # compact means compact


def test_unknown_family_exits_2_listing_the_valid_ones(cli, tmp_path, data_dir):
    res = cli("train", "--family", "resnet", "--epochs", "1", "--data", data_dir, "--out", tmp_path)
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "unknown model family 'resnet'" in line
    assert "--family" in line and all(f in line for f in models.FAMILIES)
    assert not any(tmp_path.iterdir())


def test_model_section_validates_the_family(tmp_path):
    cfg = tmp_path / "edgeq.toml"
    cfg.write_text('[model]\nfamily = "bngap"\nwidth = 0.75\n')
    loaded = config.load(cfg)
    recipe = train.Recipe.from_model_config(loaded.model)
    assert recipe.family == "bngap" and recipe.width == 0.75 and recipe.epochs == 3
    cfg.write_text('[model]\nfamily = "vgg"\n')
    with pytest.raises(ConfigError) as exc:
        config.load(cfg)
    msg = str(exc.value)
    assert "[model]" in msg and "key 'family'" in msg and all(f in msg for f in models.FAMILIES)


def test_width_is_checked_per_family():
    with pytest.raises(UsageError, match="--width must be in"):
        train.Recipe(family="bngap", width=0).validate()


def _weights(path):
    model = tfenv.keras().models.load_model(path, compile=False)
    return [w.numpy() for w in model.weights]


def test_same_seed_gives_identical_weights(tmp_path, data_dir):
    """Augmentation, dropout, shuffling and init all seeded; op determinism on."""
    recipe = train.Recipe(
        epochs=1, batch_size=64, limit=500, augment=True, lr_schedule="cosine", width=0.5
    )
    a = train.train(recipe, tmp_path / "a", data_dir / "mnist.npz")
    b = train.train(recipe, tmp_path / "b", data_dir / "mnist.npz")
    c = train.train(
        train.Recipe(**{**recipe.to_dict(), "seed": 1}), tmp_path / "c", data_dir / "mnist.npz"
    )
    wa, wb, wc = _weights(a.model_path), _weights(b.model_path), _weights(c.model_path)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(wa, wb, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(wa, wc, strict=True))
    ha = json.loads((a.out_dir / "history.json").read_text())
    hb = json.loads((b.out_dir / "history.json").read_text())
    assert ha == hb
