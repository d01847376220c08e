"""SPADE adversarial, feature-matching and KL losses.

All functions are pure functions of tensors (no state) and return float32 scalars whatever the
input dtype, so they are safe under a mixed-precision policy.

Discriminator outputs follow the MultiscaleDiscriminator convention: a list over scales (num_D
entries, finest first) of lists of feature maps, each [N, h_k, w_k, c_k]; the LAST entry of each
scale's list is the patch logits [N, h, w, 1], the others are intermediate features used only by
feature matching. A scale given as a bare tensor is treated as a one-element list (logits only).

The loss weights lambda_feat (10) and lambda_kld (0.05) are applied by the caller, not here.
"""

import numbers

import tensorflow as tf
from keras import ops


def _scale_list(outputs, name):
    """Checks the nesting of discriminator `outputs` and returns it as a list of lists."""
    if not isinstance(outputs, (list, tuple)) or len(outputs) == 0:
        raise ValueError(
            f"`{name}` must be a non-empty list over discriminator scales (each a list of "
            f"feature maps ending with the logits); got {type(outputs).__name__}."
        )
    scales = []
    for scale in outputs:
        features = list(scale) if isinstance(scale, (list, tuple)) else [scale]
        if len(features) == 0:
            raise ValueError(f"`{name}` has a discriminator scale with no outputs.")
        scales.append(features)
    return scales


def _check_same_scales(real_scales, fake_scales):
    if len(real_scales) != len(fake_scales):
        raise ValueError(
            f"`real_outputs` has {len(real_scales)} discriminator scales but `fake_outputs` has "
            f"{len(fake_scales)}; both must come from the same discriminator."
        )


def _f32(x):
    return ops.cast(x, "float32")


def hinge_d_loss(real_outputs, fake_outputs):
    """Hinge loss of the discriminator, averaged over scales.

    Per scale: mean(relu(1 - D(real))) + mean(relu(1 + D(fake))), using that scale's logits
    (last entry); the mean is over every patch logit of every sample.

    Args:
        real_outputs: discriminator outputs on real images (list over scales of lists of
            tensors, logits last, logits [N, h, w, 1]).
        fake_outputs: discriminator outputs on generated images, same structure.

    Returns:
        float32 scalar.
    """
    real_scales = _scale_list(real_outputs, "real_outputs")
    fake_scales = _scale_list(fake_outputs, "fake_outputs")
    _check_same_scales(real_scales, fake_scales)
    total = 0.0
    for real_features, fake_features in zip(real_scales, fake_scales):
        real_logits = _f32(real_features[-1])  # [N, h, w, 1]
        fake_logits = _f32(fake_features[-1])  # [N, h, w, 1]
        total += ops.mean(ops.relu(1.0 - real_logits)) + ops.mean(ops.relu(1.0 + fake_logits))
    return total / len(real_scales)


def hinge_g_loss(fake_outputs):
    """Hinge (adversarial) loss of the generator: -mean(D(fake)) per scale, averaged over scales.

    Args:
        fake_outputs: discriminator outputs on generated images (list over scales of lists of
            tensors, logits [N, h, w, 1] last).

    Returns:
        float32 scalar.
    """
    fake_scales = _scale_list(fake_outputs, "fake_outputs")
    total = 0.0
    for fake_features in fake_scales:
        total += -ops.mean(_f32(fake_features[-1]))
    return total / len(fake_scales)


def feature_matching_loss(real_outputs, fake_outputs):
    """Discriminator feature-matching loss (pix2pixHD / SPADE), WITHOUT lambda_feat.

    For every scale and every intermediate output (all entries but the last, the logits):
    mean|fake - stop_gradient(real)|, divided by num_D (the number of scales); the terms are
    summed. The caller multiplies the result by lambda_feat (10 in SPADE). Real features are
    detached so the generator is pulled towards them without the discriminator being trained
    by this loss through the real branch.

    Args:
        real_outputs: discriminator outputs on real images (list over scales of lists of
            feature maps [N, h_k, w_k, c_k], logits last).
        fake_outputs: discriminator outputs on generated images, same structure.

    Returns:
        float32 scalar (0 when the scales have no intermediate outputs).
    """
    real_scales = _scale_list(real_outputs, "real_outputs")
    fake_scales = _scale_list(fake_outputs, "fake_outputs")
    _check_same_scales(real_scales, fake_scales)
    num_d = len(fake_scales)
    total = ops.convert_to_tensor(0.0, dtype="float32")
    for scale_index, (real_features, fake_features) in enumerate(zip(real_scales, fake_scales)):
        if len(real_features) != len(fake_features):
            raise ValueError(
                f"Discriminator scale {scale_index}: `real_outputs` has {len(real_features)} "
                f"outputs but `fake_outputs` has {len(fake_features)}."
            )
        for real, fake in zip(real_features[:-1], fake_features[:-1]):
            real = ops.stop_gradient(_f32(real))  # [N, h_k, w_k, c_k]
            total += ops.mean(ops.abs(_f32(fake) - real)) / num_d
    return total


def kl_divergence(mu, logvar, reduction="sum"):
    """KL(N(mu, exp(logvar)) || N(0, I)) of the VAE encoder, WITHOUT lambda_kld.

    KL = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)), where mu and logvar are the mean and the
    log-variance of the encoder's diagonal Gaussian. The caller multiplies by lambda_kld (0.05).

    Args:
        mu: posterior mean, [N, z_dim].
        logvar: posterior log-variance, [N, z_dim].
        reduction: "sum" sums over batch and latent dims (as the SPADE reference does, so the
            value grows with the batch size); "mean" sums over latent dims and averages over
            the batch.

    Returns:
        float32 scalar.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"`reduction` must be 'sum' or 'mean'; got {reduction!r}.")
    mu = _f32(mu)  # [N, z_dim]
    logvar = _f32(logvar)  # [N, z_dim]
    kl = -0.5 * (1.0 + logvar - ops.square(mu) - ops.exp(logvar))  # [N, z_dim]
    kl = ops.reshape(kl, (ops.shape(kl)[0], -1))  # [N, z_dim]
    per_sample = ops.sum(kl, axis=-1)  # [N]
    if reduction == "sum":
        return ops.sum(per_sample)
    return ops.mean(per_sample)


def split_real_fake(outputs, batch_size):
    """Splits discriminator outputs computed on concat([fake, real], axis=0).

    SPADE runs the discriminator once on a batch whose FIRST `batch_size` samples are the fake
    images and the remaining ones the real images (one pass is faster than two); this undoes
    that concatenation for every tensor of the nested outputs.

    Args:
        outputs: any nest (lists/tuples) of tensors [2 * batch_size, ...], typically the
            MultiscaleDiscriminator's list over scales of lists of feature maps.
        batch_size: number of fake samples (= number of real samples); int or scalar tensor.

    Returns:
        (fake_outputs, real_outputs): two nests with the structure of `outputs`, each tensor
        [batch_size, ...]. Order: fake first, then real.
    """

    static_batch = isinstance(batch_size, numbers.Integral)

    def check(tensor):
        total = tensor.shape[0]
        if static_batch and total is not None and total != 2 * batch_size:
            raise ValueError(
                f"`outputs` tensors have batch {total} but `batch_size`={batch_size}; expected "
                f"2 * batch_size (fake and real concatenated)."
            )
        return tensor

    tf.nest.map_structure(check, outputs)
    fake_outputs = tf.nest.map_structure(lambda t: t[:batch_size], outputs)  # [B, ...]
    real_outputs = tf.nest.map_structure(lambda t: t[batch_size:], outputs)  # [B, ...]
    return fake_outputs, real_outputs
