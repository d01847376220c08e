"""StyleGAN2 losses: non-saturating logistic GAN loss, R1 penalty, path-length penalty.

Pure functions of tensors returning float32 scalars (the path-length penalty also returns the
updated running mean, which the caller stores). Loss weights and lazy-regularisation intervals
are applied by the caller (models/stylegan2/trainer.py), not here.
"""

import tensorflow as tf


def d_logistic_loss(real_logits, fake_logits):
    """Discriminator logistic loss: mean softplus(-D(real)) + mean softplus(D(fake)).

    Args:
        real_logits: [N, 1] (or [N]) D outputs on real images.
        fake_logits: [M, 1] D outputs on generated images.
    """
    real_logits = tf.cast(real_logits, tf.float32)
    fake_logits = tf.cast(fake_logits, tf.float32)
    return tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(
        tf.nn.softplus(fake_logits)
    )


def g_nonsaturating_loss(fake_logits):
    """Generator non-saturating loss: mean softplus(-D(G(z))) = -mean log sigmoid(D(G(z)))."""
    return tf.reduce_mean(tf.nn.softplus(-tf.cast(fake_logits, tf.float32)))


def r1_penalty(real_grads):
    """R1: mean over the batch of ||d sum(D(real)) / d real||^2.

    Args:
        real_grads: [N, H, W, C] gradient of the summed real logits w.r.t. the real images
            (computed by the caller under a GradientTape that watches the images).
    Returns:
        float32 scalar; the caller weighs it by gamma / 2 (times the lazy interval).
    """
    real_grads = tf.cast(real_grads, tf.float32)
    return tf.reduce_mean(tf.reduce_sum(tf.square(real_grads), axis=[1, 2, 3]))


def path_length_noise_scale(images):
    """1 / sqrt(H W): the image-space noise y ~ N(0, I) / sqrt(HW) of the path-length penalty."""
    shape = tf.shape(images)
    return tf.math.rsqrt(tf.cast(shape[1] * shape[2], tf.float32))


def path_lengths(ws_grads):
    """Per-sample Jacobian norms ||J_w^T y||: sqrt(mean over layers of sum over w of grad^2).

    Args:
        ws_grads: [N, num_ws, w_dim] gradient of sum(images * y) w.r.t. the ws.
    Returns:
        [N] float32.
    """
    ws_grads = tf.cast(ws_grads, tf.float32)
    return tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(ws_grads), axis=2), axis=1))


def path_length_penalty(lengths, pl_mean, decay=0.01):
    """Path-length penalty against an exponential running mean of the lengths.

    a_new = a + decay (mean(lengths) - a); penalty = mean((lengths - a_new)^2), with the running
    mean a treated as a constant (no gradient flows into it).

    Args:
        lengths: [N] path lengths (see `path_lengths`).
        pl_mean: scalar running mean a before this step.
        decay: weight of the new batch mean (0.01).
    Returns:
        (penalty float32 scalar, new running mean float32 scalar, already stop-gradiented).
    """
    lengths = tf.cast(lengths, tf.float32)
    pl_mean = tf.cast(pl_mean, tf.float32)
    new_mean = tf.stop_gradient(pl_mean + decay * (tf.reduce_mean(lengths) - pl_mean))
    penalty = tf.reduce_mean(tf.square(lengths - new_mean))
    return penalty, new_mean
