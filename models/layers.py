"""Building blocks shared by the SPADE / GauGAN networks.

- `SNConv2D`: 2-D convolution with optional spectral normalisation (reference-style: the raw
  kernel is the trainable variable and sigma is divided out in the forward pass).
- `InstanceNormalization`: parameter-free instance norm (affine off), statistics in float32.
- `ParamFreeBatchNorm`: parameter-free (synchronised) batch norm with a lighter gradient.
- `param_free_norm`: factory for the parameter-free norms used by SPADE and the discriminator.
- `xavier_normal_init`: the reference's xavier-normal initialiser with gain 0.02.
- `resize_nearest`: nearest-neighbour resize with the reference's (PyTorch) sampling grid.
- `one_hot_conv`: a conv over a one-hot map computed by lookup.
- `spectral_norm_conv2d`, `leaky_relu`: ops with gradients that keep less memory.

All layers are NHWC.
"""

import keras
import tensorflow as tf
from keras import ops

# The reference initialises every conv / linear kernel with xavier-normal, gain 0.02.
REFERENCE_INIT_GAIN = 0.02


def xavier_normal_init(gain=REFERENCE_INIT_GAIN):
    """Xavier (Glorot) normal initialiser with a gain, as `torch.nn.init.xavier_normal_`.

    std = gain * sqrt(2 / (fan_in + fan_out)), i.e. VarianceScaling(scale=gain**2, "fan_avg").
    Keras computes fans for a [kh, kw, cin, cout] kernel as kh*kw*cin / kh*kw*cout, like PyTorch.

    Args:
        gain: multiplier on the standard deviation (0.02 in the reference).
    """
    return keras.initializers.VarianceScaling(
        scale=gain**2, mode="fan_avg", distribution="untruncated_normal"
    )


def resize_nearest(images, size):
    """Nearest-neighbour resize that samples like PyTorch's `F.interpolate(mode="nearest")`.

    PyTorch picks source index floor(dst * in / out) (the top-left pixel of each block when
    downsampling); `tf.image.resize` uses half-pixel centres and picks the block centre instead.
    Following the reference keeps which label pixel feeds each low-resolution position the same.
    For integer upsampling factors both conventions agree.

    Args:
        images: [N, H, W, C] tensor (any float or int dtype supported by TF).
        size: (out_h, out_w), Python ints or scalar int tensors (dynamic shapes are fine).
    Returns:
        [N, out_h, out_w, C] tensor of the input dtype.
    """
    size = tf.cast(tf.stack([size[0], size[1]]), "int32")  # [2]
    return tf.raw_ops.ResizeNearestNeighbor(
        images=images, size=size, align_corners=False, half_pixel_centers=False
    )


def one_hot_conv(labels, kernel, bias=None, strides=1, padding="same"):
    """A zero-padded conv over the one-hot encoding of `labels`, computed by lookup.

    conv(one_hot(labels, S), kernel) at a pixel is the sum, over the kh x kw window, of the
    kernel row of the label found at each offset: kh * kw gathers of [C]-vectors instead of
    kh * kw * S * C multiply-adds (151 x fewer for ADE20K's 151 channels). The gradient with
    respect to the kernel is a segment sum of the output gradient by those same indices (the
    filter gradient of the conv, without its S-fold waste on zeros); labels get no gradient.
    Labels outside [0, S) contribute nothing, like the all-zero rows `tf.one_hot` gives them.

    Args:
        labels: [N, H, W] integer label map.
        kernel: [kh, kw, S, C] conv kernel, float.
        bias: optional [C] bias.
        strides: int or (sh, sw).
        padding: "same" (stride 1 and odd kh, kw only: k // 2 on each side) or an int p, zero
            padding of p pixels on each spatial side before a "valid" conv (PyTorch's padding).
    Returns:
        [N, H', W', C] in the kernel's dtype; equal to the conv of `tf.one_hot(labels, S)` with
        `kernel` (plus bias) up to summation order.
    """
    kh, kw, classes, channels = kernel.shape
    sh, sw = _pair(strides, "strides")
    if padding == "same":
        if (sh, sw) != (1, 1) or kh % 2 != 1 or kw % 2 != 1:
            raise ValueError(
                f"one_hot_conv: 'same' padding needs stride 1 and a kernel with k odd, got "
                f"strides={strides}, kernel {kernel.shape}; pass an int padding instead."
            )
        ph, pw = kh // 2, kw // 2
    elif isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        ph = pw = padding
    else:
        raise ValueError(f"one_hot_conv: `padding` must be 'same' or an int >= 0, got {padding!r}.")
    labels = tf.cast(labels, tf.int32)  # [N, H, W]
    # Row `classes` of each offset's table is the zero row: padding and out-of-range labels.
    labels = tf.where((labels >= 0) & (labels < classes), labels, classes)
    padded = tf.pad(labels, [[0, 0], [ph, ph], [pw, pw]], constant_values=classes)
    height = (tf.shape(labels)[1] + 2 * ph - kh) // sh + 1  # output size
    width = (tf.shape(labels)[2] + 2 * pw - kw) // sw + 1
    rows = classes + 1
    # indices[o]: [N, H', W'] rows of the flattened [kh * kw * rows, C] table for offset o.
    indices = [
        padded[:, dy : dy + sh * (height - 1) + 1 : sh, dx : dx + sw * (width - 1) + 1 : sw]
        + (dy * kw + dx) * rows
        for dy in range(kh)
        for dx in range(kw)
    ]

    @tf.custom_gradient
    def lookup(kernel):
        table = tf.concat([kernel, tf.zeros((kh, kw, 1, channels), kernel.dtype)], axis=2)
        table = tf.reshape(table, (kh * kw * rows, channels))  # [kh * kw * (S + 1), C]
        # Summed one kernel row (kw offsets) at a time, each row's gathers made after the sum
        # so far: TF would otherwise run all kh * kw gathers at once, each as large as the
        # output (at SPADE's 256 px, 9 x 32 MiB per layer alive together).
        out = None
        for row in range(kh):
            with tf.control_dependencies([] if out is None else [out]):
                terms = [tf.gather(table, index) for index in indices[row * kw : (row + 1) * kw]]
            out = tf.add_n(terms if out is None else [out, *terms])  # [N, H', W', C]

        def grad(upstream):  # upstream: [N, H', W', C]
            flat = tf.reshape(upstream, (-1, channels))  # [N * H' * W', C]
            table_grad = tf.add_n(
                [
                    tf.math.unsorted_segment_sum(flat, tf.reshape(index, (-1,)), kh * kw * rows)
                    for index in indices
                ]
            )  # [kh * kw * (S + 1), C]
            table_grad = tf.reshape(table_grad, (kh, kw, rows, channels))
            return table_grad[:, :, :classes]  # the zero row is a constant

        return out, grad

    out = lookup(tf.convert_to_tensor(kernel))
    if bias is not None:
        out = out + tf.cast(bias, out.dtype)
    return out


def leaky_relu(x, negative_slope=0.2):
    """Leaky ReLU whose gradient is computed from its output, not its input.

    With a positive slope the output has the input's sign, so TF's LeakyReluGrad gives the same
    gradient from either; taking the output (which the next conv keeps for its own gradient
    anyway) lets the backward pass drop the input, one activation-sized tensor per use.
    """
    if negative_slope <= 0:
        raise ValueError(f"leaky_relu: `negative_slope` must be > 0, got {negative_slope!r}.")

    @tf.custom_gradient
    def activate(x):
        out = tf.nn.leaky_relu(x, alpha=negative_slope)

        def grad(upstream):
            return tf.raw_ops.LeakyReluGrad(gradients=upstream, features=out, alpha=negative_slope)

        return out, grad

    return activate(tf.convert_to_tensor(x))


def accumulation_dtype(dtype):
    """Where statistics and spectral norms are computed: float64 for float64 inputs (a float64
    network is the numerical reference of the float32 one), float32 otherwise (also under
    mixed precision)."""
    return "float64" if keras.backend.standardize_dtype(dtype) == "float64" else "float32"


def _sigma(kernel, u, v):
    """v^T W u for W = kernel reshaped to [kh*kw*cin, cout]: the spectral-norm estimate."""
    weight = tf.reshape(kernel, (-1, kernel.shape[-1]))  # [kh*kw*cin, cout]
    return tf.reduce_sum(tf.matmul(v, weight) * u)  # []


def spectral_norm_conv2d(x, kernel, u, v, strides, padding):
    """conv2d(x, W / sigma) with sigma = v^T W u; gradients flow to x and W (through sigma too).

    The same function autodiff would differentiate, with a hand-written gradient that keeps
    less memory: the normalised kernel is recomputed in the backward pass instead of being held
    from the forward pass to the backward pass, and every kernel-sized temporary of the
    gradient depends on the incoming gradient, so none is computed ahead of time (TF runs an op
    as soon as its inputs exist; autodiff's -W / sigma^2 would run during the forward pass and
    stay resident). At SPADE's 256 px preset this is about a third of a GiB of peak memory.

    dL/dW = (G - <G, W / sigma> v u^T) / sigma, with G = dL/d(W / sigma) the conv's filter
    gradient (u, v are constants: the power iteration runs under stop_gradient).

    Args:
        x: [N, H, W, cin] input in the compute dtype (already padded for integer padding).
        kernel: [kh, kw, cin, cout] float32 raw kernel W.
        u: [1, cout], v: [1, kh*kw*cin] float32 singular-vector estimates.
        strides: (sh, sw).
        padding: "same" or "valid".
    Returns:
        [N, H', W', cout] in x's dtype.
    """
    strides = [1, int(strides[0]), int(strides[1]), 1]
    padding = padding.upper()

    # Backward ops named like autodiff's, "gradient_tape/<forward scope>/..." (graph mode).
    scope = tf.get_current_name_scope()
    backward_scope = f"gradient_tape/{scope}/" if scope else "gradient_tape/"

    @tf.custom_gradient
    def conv(x, kernel):
        sigma = _sigma(kernel, u, v)
        out = tf.nn.conv2d(x, tf.cast(kernel / sigma, x.dtype), strides, padding)

        def grad(upstream):  # [N, H', W', cout]
            with tf.name_scope(backward_scope):
                # Not before the backward pass reaches this conv:
                with tf.control_dependencies([upstream]):
                    normalized = kernel / sigma  # [kh, kw, cin, cout] float32 (or float64)
                x_grad = tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(x),
                    filter=tf.cast(normalized, x.dtype),
                    out_backprop=upstream,
                    strides=strides,
                    padding=padding,
                )
                normalized_grad = tf.cast(
                    tf.raw_ops.Conv2DBackpropFilter(
                        input=x,
                        filter_sizes=tf.shape(kernel),
                        out_backprop=upstream,
                        strides=strides,
                        padding=padding,
                    ),
                    kernel.dtype,
                )  # dL / d(W / sigma)
                projection = tf.reduce_sum(normalized_grad * normalized)  # <G, W / sigma>
                rank_one = tf.matmul(projection * v, u, transpose_a=True)  # [kh*kw*cin, cout]
                kernel_grad = (normalized_grad - tf.reshape(rank_one, tf.shape(kernel))) / sigma
                return x_grad, kernel_grad

        return out, grad

    # Read outside the custom gradient (a mirrored variable's value may still be a variable).
    return conv(tf.convert_to_tensor(x), tf.convert_to_tensor(kernel))


def _l2_normalize(x, eps=1e-12):
    # Same guard as torch.nn.functional.normalize, so a zero vector stays finite.
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), eps)


def _random_unit_vector(shape, dtype=None):
    """Initialiser: a standard-normal vector scaled to unit L2 norm (the reference's u, v)."""
    # A fresh RandomNormal draws its seed from Python's RNG (set by keras.utils.set_random_seed);
    # an unseeded keras.random.normal here would touch the global seed state during build.
    sample = keras.initializers.RandomNormal(stddev=1.0)(shape, dtype=dtype or "float32")
    return _l2_normalize(sample)


@keras.saving.register_keras_serializable(package="semsynth")
class SNConv2D(keras.layers.Layer):
    """2-D convolution (NHWC) with optional spectral normalisation.

    Spectral-norm design (a deliberate choice, following the reference's
    `torch.nn.utils.spectral_norm`, not `keras.layers.SpectralNormalization`):
    - The raw kernel W is the trainable variable; the forward pass uses W / sigma(W), so gradients
      flow through sigma. (Keras' wrapper instead overwrites the kernel in place with W / sigma on
      every training call, with no gradient through sigma.)
    - The power-iteration vectors u [1, cout] and v [1, kh*kw*cin] are non-trainable state
      (float32, `aggregation="only_first_replica"`: every replica computes the same update from
      the mirrored kernel). They add no trainable parameters.
    - training=True: `power_iterations` steps update u and v under stop_gradient, then
      sigma = v^T W u with the updated vectors.
    - training=False / None: no power iteration and no state change; sigma uses the stored u, v,
      so inference outputs are deterministic.
    - sigma is computed in float32 even under a mixed-precision policy (the kernel is read
      without autocast); the normalised kernel is then cast to the compute dtype for the conv.

    Args:
        filters: number of output channels, cout.
        kernel_size: int or (kh, kw).
        strides: int or (sh, sw).
        padding: "same", "valid" or an int p = explicit symmetric zero padding of p pixels on
            each spatial side before a "valid" convolution (PyTorch's `padding=p`).
        use_bias: whether to add a per-channel bias [cout].
        spectral_norm: whether to divide the kernel by its largest singular value.
        power_iterations: power-iteration steps per training call (>= 1).
        kernel_initializer: initialiser of the [kh, kw, cin, cout] kernel.
        bias_initializer: initialiser of the [cout] bias.
        **kwargs: forwarded to `keras.layers.Layer` (name, dtype, ...).

    Example:
    >>> conv = SNConv2D(8, 4, strides=2, padding=2)
    >>> conv(ops.zeros((2, 32, 32, 3))).shape
    (2, 17, 17, 8)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        use_bias=True,
        spectral_norm=True,
        power_iterations=1,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"SNConv2D: `filters` must be >= 1, got {filters!r}.")
        if isinstance(padding, str):
            if padding.lower() not in ("same", "valid"):
                raise ValueError(
                    f"SNConv2D: `padding` must be 'same', 'valid' or an int >= 0, got {padding!r}."
                )
            padding = padding.lower()
        elif isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(
                f"SNConv2D: `padding` must be 'same', 'valid' or an int >= 0, got {padding!r}."
            )
        if int(power_iterations) < 1:
            raise ValueError(
                f"SNConv2D: `power_iterations` must be >= 1, got {power_iterations!r}."
            )
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = padding
        self.use_bias = bool(use_bias)
        self.spectral_norm = bool(spectral_norm)
        self.power_iterations = int(power_iterations)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(f"SNConv2D {self.name}: the channel dimension must be known.")
        kh, kw = self.kernel_size
        # autocast=False: read in float32 so sigma is computed in float32 under mixed precision.
        self.kernel = self.add_weight(
            shape=(kh, kw, in_channels, self.filters),
            initializer=self.kernel_initializer,
            name="kernel",
            autocast=False,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.filters,), initializer=self.bias_initializer, name="bias"
            )
        else:
            self.bias = None
        if self.spectral_norm:
            self.u = self.add_weight(
                shape=(1, self.filters),
                initializer=_random_unit_vector,
                name="sn_u",
                trainable=False,
                autocast=False,
                dtype=accumulation_dtype(self.variable_dtype),
                aggregation="only_first_replica",
            )
            self.v = self.add_weight(
                shape=(1, kh * kw * in_channels),
                initializer=_random_unit_vector,
                name="sn_v",
                trainable=False,
                autocast=False,
                dtype=accumulation_dtype(self.variable_dtype),
                aggregation="only_first_replica",
            )

    def normalized_kernel(self, training=False):
        """The kernel actually convolved: W / sigma (or W without spectral norm), float32.

        With training=True this runs the power iteration and updates the u, v state.
        """
        kernel = ops.cast(
            self.kernel, accumulation_dtype(self.variable_dtype)
        )  # [kh, kw, cin, cout]
        if not self.spectral_norm:
            return kernel
        u, v = self.power_iteration(training)
        return kernel / _sigma(kernel, u, v)

    def power_iteration(self, training):
        """The singular-vector estimates (u [1, cout], v [1, kh*kw*cin]) sigma is computed with.

        training=True runs `power_iterations` steps from the stored vectors, stores the result
        and returns it; otherwise returns the stored vectors. No gradient flows through them.
        """
        u = self.u.value  # [1, cout]
        v = self.v.value  # [1, kh*kw*cin]
        if training:
            frozen_weight = ops.stop_gradient(ops.reshape(self.kernel.value, (-1, self.filters)))
            for _ in range(self.power_iterations):
                v = _l2_normalize(ops.matmul(u, ops.transpose(frozen_weight)))  # [1, kh*kw*cin]
                u = _l2_normalize(ops.matmul(v, frozen_weight))  # [1, cout]
            self.u.assign(u)
            self.v.assign(v)
        return ops.stop_gradient(u), ops.stop_gradient(v)

    def _same_padding(self):
        """Whether the explicit padding equals "same": stride 1, odd k, p = k // 2 (no pad op)."""
        if self.padding == "same":
            return True
        kh, kw = self.kernel_size
        return self.strides == (1, 1) and kh == kw and kh % 2 == 1 and self.padding == kh // 2

    def call_on_labels(self, labels, training=None):
        """This conv applied to `one_hot(labels, cin)`, computed by lookup (`one_hot_conv`).

        For stride 1 with "same" padding only; the layer must be built. labels: [N, H, W]
        integers; returns [N, H, W, cout] in the compute dtype.
        """
        if not self._same_padding():
            raise ValueError(
                f"SNConv2D {self.name}: call_on_labels needs stride 1 and 'same' padding, got "
                f"strides={self.strides}, padding={self.padding!r}."
            )
        kernel = ops.cast(self.normalized_kernel(bool(training)), self.compute_dtype)
        bias = ops.cast(self.bias, self.compute_dtype) if self.use_bias else None
        return one_hot_conv(labels, kernel, bias)

    def call(self, inputs, training=None):
        x = inputs
        padding = "same" if self._same_padding() else self.padding
        if isinstance(padding, int):
            if padding > 0:
                p = padding
                x = ops.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))  # [N, H+2p, W+2p, C]
            padding = "valid"
        if self.spectral_norm:
            u, v = self.power_iteration(bool(training))
            x = spectral_norm_conv2d(
                ops.cast(x, self.compute_dtype), self.kernel.value, u, v, self.strides, padding
            )  # [N, H', W', cout]
        else:
            kernel = ops.cast(self.kernel, self.compute_dtype)
            x = ops.conv(
                x, kernel, strides=self.strides, padding=padding, data_format="channels_last"
            )  # [N, H', W', cout]
        if self.use_bias:
            x = x + self.bias
        return x

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, *[self._out_size(s, i) for i, s in enumerate((h, w))], self.filters)

    def _out_size(self, size, axis):
        if size is None:
            return None
        k, s = self.kernel_size[axis], self.strides[axis]
        if self.padding == "same":
            return -(-size // s)
        p = 0 if self.padding == "valid" else self.padding
        return (size + 2 * p - k) // s + 1

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "use_bias": self.use_bias,
                "spectral_norm": self.spectral_norm,
                "power_iterations": self.power_iterations,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


def _pair(value, arg_name):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"SNConv2D: `{arg_name}` must be an int or a pair of ints >= 1.")
    return value


@keras.saving.register_keras_serializable(package="semsynth")
class InstanceNormalization(keras.layers.Layer):
    """Parameter-free instance normalisation (PyTorch `InstanceNorm2d`, affine off).

    Normalises each sample and channel over H, W with the biased variance. Statistics are
    computed in float32 (bf16 / fp16 sums over large images lose precision) and the output is
    cast back to the input dtype.

    Args:
        epsilon: added to the variance before the square root.
        **kwargs: forwarded to `keras.layers.Layer`.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        x = ops.cast(inputs, accumulation_dtype(inputs.dtype))  # [N, H, W, C]
        mean = ops.mean(x, axis=(1, 2), keepdims=True)  # [N, 1, 1, C]
        variance = ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True)  # [N, 1, 1, C]
        x = (x - mean) * ops.rsqrt(variance + self.epsilon)  # [N, H, W, C]
        return ops.cast(x, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class ParamFreeBatchNorm(keras.layers.BatchNormalization):
    """Batch normalisation without scale or shift (SPADE's param-free norm), light on memory.

    `keras.layers.BatchNormalization(center=False, scale=False)`: the same function, variables
    and config, statistics synchronised across replicas when `synchronized`. The moving variance
    is updated with the unbiased batch variance (n / (n - 1) times the biased one, n the values
    per channel over the global batch), as PyTorch's BatchNorm and the reference's synchronised
    batch norm do; Keras uses the biased one (1.33x apart at 4 values per channel). Training
    mode has a hand-written gradient, the standard batch-norm one,

        dx = (g - mean(g) - x_hat * mean(g * x_hat)) / std    (means over the global batch),

    so the backward pass keeps only x_hat = (x - mean) / std and 1 / std. Autodiff of Keras'
    version keeps the input too and makes several input-sized temporaries, and its
    synchronised statistics count the batch with a tensor of ones the input's size (at SPADE's
    256 px preset, about 0.1 GiB of the training step's peak). Statistics are computed in
    float32, the output cast to the compute dtype, as Keras does.

    Args:
        momentum: moving-average momentum (0.9 = PyTorch's 0.1).
        epsilon: added to the variance.
        synchronized: batch statistics over all replicas under tf.distribute.
        **kwargs: forwarded to `keras.layers.BatchNormalization` (center and scale stay off).
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, synchronized=False, **kwargs):
        for name in ("center", "scale"):
            if kwargs.pop(name, False):
                raise ValueError(f"ParamFreeBatchNorm has no learned {name}; got {name}=True.")
        super().__init__(
            momentum=momentum,
            epsilon=epsilon,
            synchronized=synchronized,
            center=False,
            scale=False,
            **kwargs,
        )

    def call(self, inputs, training=None, mask=None):
        if mask is not None or self.renorm or not (training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, accumulation_dtype(inputs.dtype))  # [..., C]
        axes = list(range(len(x.shape) - 1))
        replica = tf.distribute.get_replica_context()
        synchronized = (
            self.synchronized and replica is not None and replica.num_replicas_in_sync > 1
        )

        def global_sum(*tensors):  # over the replicas when synchronised
            if synchronized:
                return replica.all_reduce(tf.distribute.ReduceOp.SUM, list(tensors))
            return list(tensors)

        local_count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
        frozen = tf.stop_gradient(x)  # the gradient below accounts for the statistics
        if synchronized:  # one all-reduce of sums, as Keras: var = E[x^2] - E[x]^2
            total, squares, count = global_sum(
                tf.reduce_sum(frozen, axes), tf.reduce_sum(tf.square(frozen), axes), local_count
            )
            mean = total / count  # [C]
            variance = tf.maximum(squares / count - tf.square(mean), 0.0)  # [C]
        else:
            count = local_count
            mean, variance = tf.nn.moments(frozen, axes)  # [C], [C]
        inv_std = tf.math.rsqrt(variance + self.epsilon)  # [C]

        @tf.custom_gradient
        def normalize(x):
            normalized = (x - mean) * inv_std  # [..., C]

            def grad(upstream):  # [..., C]
                # Centred in two passes: when the upstream gradient is nearly constant per
                # channel (common behind a GAN loss), g - mean(g) cancels most of its digits,
                # so the rounding of the first mean is removed by a second one over the centred
                # values; the dot product is taken of the centred values too (sum x_hat = 0).
                (grad_sum,) = global_sum(tf.reduce_sum(upstream, axes))  # [C]
                centred = upstream - grad_sum / count  # [..., C]
                residual, grad_dot = global_sum(
                    tf.reduce_sum(centred, axes), tf.reduce_sum(centred * normalized, axes)
                )  # [C], [C]
                return inv_std * (centred - (residual + normalized * grad_dot) / count)

            return normalized, grad

        self.moving_mean.assign(
            self.moving_mean * self.momentum
            + tf.cast(mean, self.moving_mean.dtype) * (1.0 - self.momentum)
        )
        unbiased = variance * count / tf.maximum(count - 1.0, 1.0)  # [C], as PyTorch
        self.moving_variance.assign(
            self.moving_variance * self.momentum
            + tf.cast(unbiased, self.moving_variance.dtype) * (1.0 - self.momentum)
        )
        return ops.cast(normalize(x), self.compute_dtype)


NORM_KINDS = ("instance", "batch", "syncbatch")


def param_free_norm(kind, name=None):
    """A normalisation layer without learned scale / shift (SPADE supplies its own).

    Args:
        kind: "instance" (per sample and channel over H, W), "batch" (batch statistics, moving
            averages at inference; momentum 0.9 = PyTorch 0.1) or "syncbatch" (the same with batch
            statistics synchronised across replicas under tf.distribute, as in the reference).
        name: optional layer name.
    Returns:
        a `keras.layers.Layer` mapping [N, H, W, C] -> [N, H, W, C].
    """
    if kind == "instance":
        return InstanceNormalization(epsilon=1e-5, name=name)
    if kind in ("batch", "syncbatch"):
        return ParamFreeBatchNorm(
            momentum=0.9, epsilon=1e-5, synchronized=(kind == "syncbatch"), name=name
        )
    raise ValueError(f"param_free_norm: unknown norm kind {kind!r}; expected one of {NORM_KINDS}.")
