"""Tests for training/optimizers.py: FusedAdam equals keras Adam, step by step."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT as REPO_ROOT

from training.optimizers import FusedAdam


def _run(optimizer_class, kwargs, steps=6):
    """Trains two variables on a fixed quadratic; returns their values, m and v after `steps`."""
    rng = np.random.default_rng(0)
    variables = [
        tf.Variable(rng.normal(size=(7, 5)).astype("float32")),
        tf.Variable(rng.normal(size=(5,)).astype("float32")),
    ]
    targets = [rng.normal(size=v.shape).astype("float32") for v in variables]
    optimizer = optimizer_class(**kwargs)
    optimizer.build(variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.add_n(
                [tf.reduce_sum(tf.square(v - t) * (1.0 + v)) for v, t in zip(variables, targets)]
            )
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    initial = [v.numpy().copy() for v in variables]
    for _ in range(steps):
        step()
    slots = [w.numpy() for w in optimizer.variables]
    return [v.numpy() for v in variables], slots, initial, optimizer


@pytest.mark.parametrize(
    "kwargs",
    [
        # SPADE's TTUR Adam (beta_1 = 0) under its decaying schedule, and StyleGAN2's settings.
        {
            "learning_rate": keras.optimizers.schedules.PolynomialDecay(4e-3, 10, 1e-4),
            "beta_1": 0.0,
            "beta_2": 0.9,
        },
        {"learning_rate": 2e-3, "beta_1": 0.0, "beta_2": 0.99, "epsilon": 1e-8},
        {"learning_rate": 1e-2, "beta_1": 0.9, "beta_2": 0.999},
    ],
)
def test_fused_adam_equals_keras_adam(kwargs):
    fused, fused_slots, initial, optimizer = _run(FusedAdam, kwargs)
    plain, plain_slots, _, reference = _run(keras.optimizers.Adam, kwargs)
    for a, b, start in zip(fused, plain, initial):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert np.abs(a - start).max() > 1e-3  # the variables did move
    # The same slots under the same names (the optimizer's own name is uniquified per process).
    assert optimizer.name.startswith("adam")
    assert [w.path.split("/", 1)[1] for w in optimizer.variables] == [
        w.path.split("/", 1)[1] for w in reference.variables
    ]
    # iterations, m and v of each variable. The fused kernel forms 1 - beta_2 in float32
    # (0.00099998713 for 0.999), Keras in float64 then rounds (0.001): v differs by ~1e-5.
    for a, b in zip(fused_slots, plain_slots):
        np.testing.assert_allclose(a, b, rtol=5e-5, atol=1e-7)


def test_fused_adam_falls_back_for_amsgrad_and_round_trips_config():
    fused, _, _, optimizer = _run(FusedAdam, {"learning_rate": 1e-2, "amsgrad": True}, steps=3)
    plain, _, _, _ = _run(keras.optimizers.Adam, {"learning_rate": 1e-2, "amsgrad": True}, steps=3)
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    restored = FusedAdam.from_config(optimizer.get_config())
    assert isinstance(restored, FusedAdam) and restored.amsgrad


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from training.optimizers import FusedAdam
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = []
    for cls in (FusedAdam, keras.optimizers.Adam):
        with strategy.scope():
            var = keras.Variable(np.arange(6, dtype="float32").reshape(2, 3))
            optimizer = cls(learning_rate=0.1, beta_1=0.0, beta_2=0.9)
            optimizer.build([var])
        x = np.random.RandomState(0).randn(4, 2).astype("float32")
        dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(x))

        @tf.function
        def step(batch):
            def replica(t):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(tf.matmul(t, var) ** 2) / 2.0
                grads = tape.gradient(loss, [var])
                optimizer.apply_gradients(zip(grads, [var]))
            strategy.run(replica, args=(batch,))

        for _ in range(3):
            for batch in dataset:
                step(batch)
        copies = [v.numpy() for v in var.value.values]
        np.testing.assert_array_equal(copies[0], copies[1])
        results.append(copies[0])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(results[0], np.arange(6).reshape(2, 3))
    print("OK")
    """
)


def test_fused_adam_under_mirrored_strategy_matches_keras_adam():
    # A fresh process: logical CPU devices must be configured before TF initialises.
    proc = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
