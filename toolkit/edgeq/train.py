"""Training: the book's recipe (Adam, sparse categorical cross-entropy from logits) and
options that improve accuracy without growing the model (augmentation, cosine LR decay),
for any model family of `edgeq.models`.

Reproducible on one machine: the seed fixes Python/NumPy/TF/Keras randomness, TF op
determinism is on (`tf.config.experimental.enable_op_determinism`), the tf.data pipeline
is shuffle + batch only (seeded), and augmentation runs inside the training step from
Keras' seeded layers rather than in a parallel tf.data map, where the order in which
parallel calls drew random numbers varied from run to run.

Writes `model.keras`, `history.json`, `metrics.json` and `accuracy.png` into the output folder.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, data, fsutil, models, tfenv
from .errors import ModelError, UsageError

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a trained model (its hash names cached artifacts)."""

    dataset: str = "mnist"
    epochs: int = 15
    batch_size: int = 128
    seed: int = 0
    width: float = 1.0
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    augment: bool = False
    dropout: float | None = None  # None: the family's default (0.5 for the book's CNN)
    limit: int | None = None
    family: str = models.DEFAULT_FAMILY

    @classmethod
    def from_model_config(cls, model_cfg: dict[str, Any], **overrides: Any) -> Recipe:
        """The recipe of an `edgeq.toml` `[model]` section (as validated by `edgeq.config`)."""
        keys = {f for f in cls.__dataclass_fields__ if f in model_cfg}
        values = {k: model_cfg[k] for k in keys}
        for k in ("width", "learning_rate"):
            if k in values:
                values[k] = float(values[k])
        return cls(**{**values, **overrides})

    def validate(self) -> Recipe:
        data.check_name(self.dataset)
        models.family(self.family).check_width(self.width)
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"--lr must be > 0, got {self.learning_rate}"),
            (
                self.lr_schedule in LR_SCHEDULES,
                f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule}",
            ),
            (
                self.dropout is None or 0 <= self.dropout < 1,
                f"--dropout must be in [0, 1), got {self.dropout}",
            ),
            (self.limit is None or self.limit >= 1, f"--limit must be >= 1, got {self.limit}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UsageError(msg)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> Any:
        """The untrained Keras model of this recipe."""
        return models.build(self.family, self.width, input_shape, num_classes, self.dropout)

    def key(self, data_sha256: str) -> str:
        """Content hash of the recipe, the training data and edgeq's version."""
        doc = {"recipe": self.to_dict(), "data": data_sha256, "edgeq": __version__}
        return fsutil.sha256_bytes(json.dumps(doc, sort_keys=True).encode())[:16]


@dataclass
class TrainResult:
    out_dir: Path
    model_path: Path
    metrics: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)


def _augmenter(keras, seed: int):
    """Small shifts and rotations; the background is -1 after preprocessing."""
    return keras.Sequential(
        [
            keras.layers.RandomTranslation(
                0.08, 0.08, fill_mode="constant", fill_value=-1.0, seed=seed
            ),
            keras.layers.RandomRotation(0.04, fill_mode="constant", fill_value=-1.0, seed=seed + 1),
        ],
        name="augment",
    )


def set_determinism(enabled: bool) -> bool:
    """Turn TF's op determinism on or off for this process; returns the previous state.

    Op determinism makes TF pick deterministic kernels (or fail loudly when an op has
    none) and run stateful tf.data work in a fixed order.
    """
    tf = tfenv.tf()
    from tensorflow.python.framework import config as tf_config  # deferred with TF itself

    was = bool(tf_config.is_op_determinism_enabled())
    if enabled and not was:
        tf.config.experimental.enable_op_determinism()
    elif not enabled and was:
        # No public switch back; the framework's own one (used by TF's tests).
        tf_config.disable_op_determinism()
    return was


def train(
    recipe: Recipe,
    out_dir: Path,
    data_path: Path | None = None,
    progress: Any = None,
    dataset: data.Dataset | None = None,
    deterministic: bool = True,
) -> TrainResult:
    """Train per `recipe`; `progress(epoch, epochs, batch, batches, logs)` is optional.

    `deterministic` (default) turns on TF's op determinism, so the same recipe on the same
    machine gives the same weights; off, it is faster by what `bench/smallest.py` measures.
    """
    recipe.validate()
    out = fsutil.ensure_writable_dir(out_dir)
    ds = dataset or data.load(recipe.dataset, data_path, recipe.limit)
    was = set_determinism(deterministic)
    try:
        return _train(recipe, out, ds, progress, deterministic)
    finally:
        set_determinism(was)


def _train(
    recipe: Recipe, out: Path, ds: data.Dataset, progress: Any, deterministic: bool
) -> TrainResult:
    tf = tfenv.tf()
    keras = tfenv.keras()
    keras.utils.set_random_seed(recipe.seed)

    x_train, y_train = data.preprocess(ds.x_train), ds.y_train.astype(np.int64)
    x_test, y_test = data.preprocess(ds.x_test), ds.y_test.astype(np.int64)
    model = recipe.build(x_train.shape[1:], ds.num_classes)

    steps = int(np.ceil(len(x_train) / recipe.batch_size))
    lr: Any = recipe.learning_rate
    if recipe.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, steps * recipe.epochs)
    # Augmentation is the first layer of a training-only wrapper: its seeded random state
    # advances once per step, in order. `model` (what is saved) shares the weights.
    trainer = (
        keras.Sequential([_augmenter(keras, recipe.seed), model], name="trainer")
        if recipe.augment
        else model
    )
    trainer.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(
        len(x_train), seed=recipe.seed, reshuffle_each_iteration=True
    )
    train_ds = train_ds.batch(recipe.batch_size).prefetch(tf.data.AUTOTUNE)
    # Our own dataset: Keras' numpy adapter maps in parallel (and logs about it under
    # op determinism).
    test_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(1024)

    callbacks = [_ProgressCallback(keras, progress, recipe.epochs, steps)] if progress else []
    t0 = time.perf_counter()
    hist = trainer.fit(
        train_ds,
        epochs=recipe.epochs,
        validation_data=test_ds,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles, reproducibly
        verbose=0,
    )
    train_seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    bn = reestimate_batchnorm(keras, model, x_train, recipe, steps * recipe.epochs)
    _, test_acc = trainer.evaluate(test_ds, verbose=0)
    if bn is not None:  # the last validation ran on the test split, before re-estimating
        bn["test_accuracy_before"] = (history.get("val_accuracy") or [None])[-1]
        bn["test_accuracy_after"] = float(test_acc)

    model_path = out / "model.keras"
    with fsutil.atomic_path(model_path) as tmp:
        keras_tmp = tmp.with_name(tmp.name + ".keras")
        try:
            model.save(keras_tmp)
            keras_tmp.replace(tmp)
        finally:
            keras_tmp.unlink(missing_ok=True)
    metrics = {
        "dataset": ds.name,
        "data_source": ds.source,
        "train_samples": len(x_train),
        "test_samples": len(x_test),
        "recipe": recipe.to_dict(),
        "family": recipe.family,
        "params": int(model.count_params()),
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "test_accuracy": float(test_acc),
        "final_train_accuracy": history["accuracy"][-1],
        "batchnorm_reestimated": bn,
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / recipe.epochs,
        "deterministic": deterministic,
        "model_sha256": fsutil.sha256_file(model_path),
        "versions": {
            "edgeq": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
    }
    fsutil.write_json(out / "history.json", history)
    fsutil.write_json(out / "metrics.json", metrics)
    plot_history(history, out / "accuracy.png", title=f"{model.name} on {ds.name}")
    return TrainResult(out, model_path, metrics, history)


#: BatchNorm moving statistics still carry more than this share of their initial values
#: (momentum ** training steps) are re-estimated on the training data after training.
BN_RESIDUAL_MAX = 0.01
#: Training batches the re-estimation averages over (at most).
BN_REESTIMATE_BATCHES = 100


def reestimate_batchnorm(
    keras: Any, model: Any, x_train: np.ndarray, recipe: Recipe, total_steps: int
) -> dict[str, Any] | None:
    """Re-estimate the BatchNorm moving mean/variance when a short training cannot have
    converged them (momentum ** steps > BN_RESIDUAL_MAX: e.g. 0.99 ** 188 = 0.15 for
    `--epochs 2 --limit 12000`): the moving averages still lean on their initial 0 and 1,
    and inference (the converted model too) uses them, so the test accuracy falls short of
    what training promised. The statistics become the plain average of per-batch ones over
    up to BN_REESTIMATE_BATCHES training batches (weights are not touched). None when
    nothing was done; else what was found and done."""
    bns = [la for la in _layers(model) if isinstance(la, keras.layers.BatchNormalization)]
    if not bns:
        return None
    momentum = max(float(la.momentum) for la in bns)
    residual = momentum**total_steps
    if residual <= BN_RESIDUAL_MAX:
        return None
    saved = [la.momentum for la in bns]
    rng = np.random.RandomState(recipe.seed)
    order = rng.permutation(len(x_train))
    n = min(BN_REESTIMATE_BATCHES, int(np.ceil(len(x_train) / recipe.batch_size)))
    try:
        for k in range(n):
            for la in bns:  # moving = mean of the k+1 batch statistics seen so far
                la.momentum = k / (k + 1)
            batch = x_train[order[k * recipe.batch_size : (k + 1) * recipe.batch_size]]
            model(batch, training=True)
    finally:
        for la, m in zip(bns, saved, strict=True):
            la.momentum = m
    return {
        "layers": len(bns),
        "momentum": momentum,
        "training_steps": total_steps,
        "initial_share_left": residual,
        "batches": n,
        "why": (
            f"after {total_steps} training steps the BatchNorm moving statistics still held "
            f"{residual:.0%} of their initial values (momentum {momentum:g}); re-estimated "
            f"from {n} training batches"
        ),
    }


def _layers(model: Any) -> list[Any]:
    out = []
    for la in getattr(model, "layers", []):
        out.append(la)
        out.extend(_layers(la))
    return out


def plot_history(history: dict[str, list[float]], path: Path, title: str = "") -> str:
    from .plotting import plt, save_figure  # deferred: matplotlib is slow to import

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history["accuracy"]) + 1)
    ax.plot(epochs, history["accuracy"], "o-", label="train")
    if "val_accuracy" in history:
        ax.plot(epochs, history["val_accuracy"], "s-", label="validation (test split)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "accuracy per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    if len(epochs) < 20:
        ax.set_xticks(epochs)
    return save_figure(fig, path)


def load_model(path: Path):
    """Load a `.keras` file; a missing or corrupt file is a one-line ModelError."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model not found: {p}")
    if p.suffix != ".keras":
        raise ModelError(f"{p}: expected a Keras .keras file (from `edgeq train`)")
    keras = tfenv.keras()
    try:
        return keras.models.load_model(p, compile=False)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ModelError(f"{p}: not a loadable Keras model ({reason})") from None


class _ProgressCallback:
    """Adapts Keras callbacks to a plain progress function (keeps rich out of this module)."""

    def __new__(cls, keras, fn, epochs: int, steps: int):
        class _CB(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch
                fn(epoch + 1, epochs, 0, steps, {})

            def on_train_batch_end(self, batch, logs=None):
                fn(self.epoch + 1, epochs, batch + 1, steps, logs or {})

            def on_epoch_end(self, epoch, logs=None):
                fn(epoch + 1, epochs, steps, steps, dict(logs or {}))

        return _CB()
