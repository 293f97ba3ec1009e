"""A short training leaves BatchNorm's moving statistics near their initial 0 and 1;
`reestimate_batchnorm` replaces them by the training data's own, and leaves a long
training's alone."""

from __future__ import annotations

import numpy as np

from edgeq import tfenv
from edgeq.train import Recipe, reestimate_batchnorm


def _model(keras):
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(2)]
    )


def test_short_training_gets_the_datas_statistics_and_a_long_one_is_left_alone():
    keras = tfenv.keras()
    rng = np.random.RandomState(0)
    x = (rng.randn(512, 4) * [1, 2, 3, 4] + [5, -5, 10, 0]).astype(np.float32)
    model = _model(keras)
    recipe = Recipe(batch_size=64, seed=0)
    done = reestimate_batchnorm(keras, model, x, recipe, total_steps=20)  # 0.99**20 = 0.82
    assert done is not None and done["batches"] == 8 and done["initial_share_left"] > 0.8
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(bn.moving_variance.numpy(), x.var(axis=0), rtol=0.05)
    assert bn.momentum == 0.99  # restored

    fresh = _model(keras)
    assert reestimate_batchnorm(keras, fresh, x, recipe, total_steps=5000) is None
    np.testing.assert_array_equal(fresh.get_layer("bn").moving_mean.numpy(), np.zeros(4))
