"""Semantic Palette layout losses: pure functions of tensors returning float32 scalars.

The layout synthesizer (models/palette) is a progressive WGAN-GP whose generator ends in the
"assisted" activation (a per-class spatial softmax scaled to the target class mass, then
normalised across classes per pixel). Its losses:

- `wgan_d_loss`, `wgan_g_loss`: the Wasserstein critic and generator losses.
- `interpolate`, `gradient_penalty`: WGAN-GP's penalty (||grad D(x_hat)||_2 - 1)^2 at random
  interpolates x_hat of real and fake samples; the caller takes the gradient (it owns D), so
  the penalty itself stays a pure function of the gradients.
- `drift_penalty`: ProGAN's epsilon_drift * D(real)^2 keeping the critic's scores near 0.
- `pixel_entropy`: mean over pixels of -sum_c p log p of the soft layout (pushes every pixel to
  one class, so that the argmax at test time changes little).
- `spread_loss`: mean((sum_c mask - 1)^2) of the assisted activation's scaled masks before the
  per-pixel normalisation: when it is 0 the masks already sum to 1 per pixel, the normalisation
  changes nothing and each class covers exactly its target proportion.
- `proportion_kl`: KL(target || mean soft layout), the optional proportion-matching term.

The weights (lambda_gp = 10, the entropy, spread and KL weights) are applied by the caller.
"""

import tensorflow as tf

_EPS = 1e-8


def _f32(x):
    return tf.cast(x, tf.float32)


def wgan_d_loss(real_scores, fake_scores):
    """Critic loss E[D(fake)] - E[D(real)].

    Args:
        real_scores: [N, 1] (or [N]) critic scores of real samples.
        fake_scores: [M, 1] (or [M]) critic scores of generated samples.
    Returns:
        float32 scalar.
    """
    return tf.reduce_mean(_f32(fake_scores)) - tf.reduce_mean(_f32(real_scores))


def wgan_g_loss(fake_scores):
    """Generator loss -E[D(fake)]."""
    return -tf.reduce_mean(_f32(fake_scores))


def interpolate(real, fake, epsilon):
    """x_hat = epsilon * real + (1 - epsilon) * fake, one epsilon per sample.

    Args:
        real, fake: [N, ...] samples of the same shape.
        epsilon: [N] uniform draws in [0, 1].
    Returns:
        [N, ...] interpolates in real's dtype.
    """
    real = tf.convert_to_tensor(real)
    epsilon = tf.cast(epsilon, real.dtype)
    shape = tf.concat([tf.shape(epsilon), tf.ones([tf.rank(real) - 1], tf.int32)], axis=0)
    epsilon = tf.reshape(epsilon, shape)  # [N, 1, ..., 1]
    return epsilon * real + (1.0 - epsilon) * tf.cast(fake, real.dtype)


def gradient_penalty(gradients):
    """WGAN-GP: mean over samples of (||g_i||_2 - 1)^2.

    Args:
        gradients: [N, ...] gradient of sum(D(x_hat)) with respect to the interpolates x_hat
            (sample i's gradient is row i: the critic scores each sample independently, up to
            the minibatch-stddev feature).
    Returns:
        float32 scalar (multiply by lambda_gp = 10).
    """
    gradients = _f32(gradients)
    n = tf.shape(gradients)[0]
    flat = tf.reshape(gradients, tf.stack([n, -1]))  # [N, D]
    norms = tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1) + 1e-12)  # [N]
    return tf.reduce_mean(tf.square(norms - 1.0))


def drift_penalty(real_scores):
    """ProGAN's drift term E[D(real)^2] (multiply by epsilon_drift = 0.001)."""
    return tf.reduce_mean(tf.square(_f32(real_scores)))


def pixel_entropy(layout):
    """Mean over samples and pixels of the class entropy -sum_c p log p.

    Args:
        layout: [N, H, W, C] soft layout, a distribution over C classes per pixel.
    Returns:
        float32 scalar in [0, log C].
    """
    p = _f32(layout)
    entropy = -tf.reduce_sum(p * tf.math.log(p + _EPS), axis=-1)  # [N, H, W]
    return tf.reduce_mean(entropy)


def spread_loss(mask):
    """mean((sum_c mask - 1)^2) over samples and pixels.

    Args:
        mask: [N, H, W, C] the assisted activation's masks before per-pixel normalisation
            (class c's mask sums to p_c * H * W over the pixels).
    Returns:
        float32 scalar.
    """
    total = tf.reduce_sum(_f32(mask), axis=-1)  # [N, H, W]
    return tf.reduce_mean(tf.square(total - 1.0))


def proportion_kl(layout, target):
    """Mean over samples of KL(target || the soft layout's mean class proportions).

    Args:
        layout: [N, H, W, C] soft layout.
        target: [N, C] target proportions (each row sums to 1).
    Returns:
        float32 scalar >= 0; 0 when the layout's class mass equals the target.
    """
    achieved = tf.reduce_mean(_f32(layout), axis=[1, 2])  # [N, C]
    target = _f32(target)
    kl = tf.reduce_sum(
        target * (tf.math.log(target + _EPS) - tf.math.log(achieved + _EPS)), axis=-1
    )  # [N]
    return tf.reduce_mean(kl)
