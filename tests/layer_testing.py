"""One way to test every Keras layer and network of semsynth (in the spirit of keras-hub's
`TestCase.run_layer_test`).

    from layer_testing import run_layer_test

    def test_snconv2d_layer():
        run_layer_test(
            SNConv2D,
            {"filters": 8, "kernel_size": 4, "strides": 2, "padding": 2},
            np.random.randn(2, 16, 12, 4).astype("float32"),
            expected_output_shape=(2, 9, 7, 8),
        )

Test files import it as `from layer_testing import run_layer_test`: pytest puts tests/ (the
folder of tests/conftest.py) on sys.path, which is how they already import `conftest`.
tests/models/test_layers.py checks that every layer class of models/layers.py and
models/*/networks.py is passed to `run_layer_test` by some test.
"""

import inspect
import json

import keras
import numpy as np
import tensorflow as tf


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape=None,
    call_kwargs=None,
    run_training_check=True,
    allow_zero_gradients=(),
    atol=1e-5,
):
    """Runs one layer class through the checks every layer must pass; returns the built layer.

    In order:
    1. build: a symbolic call on `keras.KerasTensor`s whose batch size is None (the layer must
       read the batch size from the tensor); its output shapes must match.
    2. eager call on `input_data`: output shapes as expected (and as `compute_output_shape`
       says, where the class defines it), all values finite.
    3. the same call inside `tf.function`: the same outputs (within `atol`).
    4. config round trip: `get_config()` holds every constructor argument and is
       JSON-serialisable, the class is registered (`keras.saving` deserialises it by name),
       `layer_cls.from_config(config)` has the same config and, with the weights copied,
       bit-identical outputs.
    5. one gradient step (`run_training_check`): training=True where the call takes it, a
       GradientTape on a fixed random projection of every output (a plain mean would be
       constant after a batch norm); every trainable variable gets a finite, not-all-zero
       gradient (except those named in `allow_zero_gradients`), a layer without trainable
       variables a non-zero gradient on its float inputs; after one SGD step the outputs
       are still finite.
    Calls 1-4 use `call_kwargs` as given, so they must be deterministic (e.g. inference mode,
    noise_mode="const").

    Args:
        layer_cls: the `keras.layers.Layer` (or `keras.Model`) subclass under test.
        init_kwargs: dict of constructor arguments (tiny sizes: widths 4-16, 8-32 px).
        input_data: the call's inputs, NumPy arrays or tensors: one array, or a list of arrays
            passed as the single first argument (e.g. SegFormerHead's features), or a dict
            passed as keyword arguments (e.g. {"x": x, "segmap": segmap}).
        expected_output_shape: the output shape, e.g. (2, 8, 8, 4), or a nested list / tuple of
            shapes for layers returning several tensors; None skips the shape checks.
        call_kwargs: extra keyword arguments of every call (not tensors).
        run_training_check: whether to run the gradient step (5).
        allow_zero_gradients: substrings of `variable.path`; a matching variable may get a zero
            or None gradient (e.g. a bias directly before a batch norm).
        atol: tolerance of the eager / tf.function comparison (the round trip must be exact).
    Returns:
        the layer, built by the checks above (after the SGD step when `run_training_check`).
    """
    call_kwargs = dict(call_kwargs or {})
    keras.utils.set_random_seed(0)  # the weights, the projection, any dropout / drop path
    inputs = tf.nest.map_structure(tf.convert_to_tensor, input_data)
    expected = None if expected_output_shape is None else _shape_tree(expected_output_shape)

    def call(layer, data, **kwargs):
        if isinstance(data, dict):
            return layer(**data, **call_kwargs, **kwargs)
        return layer(data, **call_kwargs, **kwargs)

    # 1. Build by a symbolic call with an unknown batch size.
    layer = layer_cls(**init_kwargs)
    symbolic = tf.nest.map_structure(
        lambda t: keras.KerasTensor((None, *t.shape[1:]), dtype=t.dtype.name), inputs
    )
    symbolic_output = call(layer, symbolic)
    assert layer.built, f"{layer_cls.__name__} is not built after a symbolic call"
    if expected is not None:
        assert _output_shapes(symbolic_output) == _without_batch(expected), (
            f"{layer_cls.__name__}: symbolic output shapes {_output_shapes(symbolic_output)}, "
            f"expected {_without_batch(expected)}"
        )

    # 2. Eager call.
    output = call(layer, inputs)
    if expected is not None:
        assert _output_shapes(output) == expected, (
            f"{layer_cls.__name__}: output shapes {_output_shapes(output)}, expected {expected}"
        )
        if _defines(layer_cls, "compute_output_shape"):
            computed = _shape_tree(_compute_output_shape(layer, inputs))
            assert computed == expected, (
                f"{layer_cls.__name__}.compute_output_shape gives {computed}, expected {expected}"
            )
    for value in tf.nest.flatten(output):
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(value))), layer_cls.__name__

    # 3. The same call traced by tf.function.
    traced = tf.function(lambda data: call(layer, data))(inputs)
    _assert_outputs_close(traced, output, atol, f"{layer_cls.__name__} eager vs tf.function")

    # 4. Config round trip.
    config = layer.get_config()
    missing = [name for name in _init_arguments(layer_cls) if name not in config]
    assert not missing, f"{layer_cls.__name__}.get_config() lacks the arguments {missing}"
    json.dumps(config)  # a .keras file stores it as JSON
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    assert type(keras.saving.deserialize_keras_object(serialized)) is layer_cls, (
        f"{layer_cls.__name__} is not registered with keras.saving"
    )
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, f"{layer_cls.__name__}: config changed in a round trip"
    call(clone, inputs)  # builds the clone
    clone.set_weights(layer.get_weights())
    _assert_outputs_close(call(clone, inputs), output, 0.0, f"{layer_cls.__name__} from_config")

    # 5. One gradient step.
    if run_training_check:
        _check_gradient_step(layer, inputs, call, allow_zero_gradients)
    return layer


def _check_gradient_step(layer, inputs, call, allow_zero_gradients):
    """Check 5 of `run_layer_test`: gradients of a scalar of the output, then one SGD step."""
    name = type(layer).__name__
    training = {"training": True} if "training" in inspect.signature(layer.call).parameters else {}
    float_inputs = [t for t in tf.nest.flatten(inputs) if t.dtype.is_floating]
    variables = layer.trainable_variables
    with tf.GradientTape() as tape:
        tape.watch(float_inputs)
        outputs = tf.nest.flatten(call(layer, inputs, **training))
        rng = np.random.default_rng(0)
        loss = tf.add_n(
            [
                tf.reduce_sum(tf.cast(o, "float32") * rng.normal(size=o.shape).astype("float32"))
                for o in outputs
            ]
        )
    grads = tape.gradient(loss, [v.value for v in variables] + float_inputs)
    grads = [None if g is None else tf.convert_to_tensor(g).numpy() for g in grads]
    for variable, grad in zip(variables, grads):
        may_be_zero = any(part in variable.path for part in allow_zero_gradients)
        assert grad is not None or may_be_zero, f"{name}: no gradient reaches {variable.path}"
        if grad is not None:
            assert np.all(np.isfinite(grad)), f"{name}: non-finite gradient of {variable.path}"
            assert may_be_zero or np.any(grad != 0), f"{name}: zero gradient of {variable.path}"
    input_grads = [g for g in grads[len(variables) :] if g is not None]
    assert all(np.all(np.isfinite(g)) for g in input_grads), f"{name}: non-finite input gradient"
    if not variables:  # a parameter-free layer must still pass gradients through
        assert any(np.any(g != 0) for g in input_grads), f"{name}: zero input gradient"
        return
    keras.optimizers.SGD(learning_rate=1e-3).apply_gradients(
        [(g, v) for g, v in zip(grads, variables) if g is not None]
    )
    for value in tf.nest.flatten(call(layer, inputs)):
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(value))), f"{name} after a step"


def _init_arguments(layer_cls):
    """The named constructor arguments of `layer_cls` (not self, *args, **kwargs)."""
    parameters = inspect.signature(layer_cls.__init__).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in kinds and p.name != "self"]


def _is_shape(value):
    return isinstance(value, (tuple, list)) and all(
        v is None or isinstance(v, (int, np.integer)) for v in value
    )


def _shape_tree(shapes):
    """A shape, or a nested list / tuple of shapes, as nested lists of int tuples."""
    if _is_shape(shapes):
        return tuple(None if v is None else int(v) for v in shapes)
    return [_shape_tree(s) for s in shapes]


def _output_shapes(output):
    """The shapes of a tensor or a nested list / tuple of tensors, as `_shape_tree` gives."""
    if isinstance(output, (list, tuple)):
        return [_output_shapes(o) for o in output]
    return tuple(output.shape)


def _without_batch(shapes):
    if isinstance(shapes, list):
        return [_without_batch(s) for s in shapes]
    return (None, *shapes[1:])


def _defines(layer_cls, method):
    """Whether a class below keras.layers.Layer / keras.Model defines `method`."""
    return getattr(layer_cls, method) not in (
        getattr(keras.layers.Layer, method),
        getattr(keras.Model, method),
    )


def _compute_output_shape(layer, inputs):
    """`layer.compute_output_shape` on the inputs' shapes (dict inputs: `<name>_shape` args)."""
    if isinstance(inputs, dict):
        return layer.compute_output_shape(
            **{f"{key}_shape": tuple(t.shape) for key, t in inputs.items()}
        )
    return layer.compute_output_shape(tf.nest.map_structure(lambda t: tuple(t.shape), inputs))


def _assert_outputs_close(actual, expected, atol, what):
    actual, expected = tf.nest.flatten(actual), tf.nest.flatten(expected)
    assert len(actual) == len(expected), what
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got),
            keras.ops.convert_to_numpy(want),
            rtol=1e-5 if atol else 0.0,
            atol=atol,
            err_msg=what,
        )
