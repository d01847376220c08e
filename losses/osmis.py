"""OSMIS / SIV-GAN losses: pure functions of tensors.

- `adversarial_loss`: BCE with logits (the papers' default) or hinge, of one decision map.
- `content_segmentation_loss`: with masks the content branch classifies each class-masked copy
  of the features as "class k" (real) or "fake" (class K): a (K + 1)-way cross-entropy whose
  class weights are 1 / (pixels of class k in the batch's masks), 0 for an absent class, and 1 for
  "fake"; the mean is weighted (sum w_t * nll / sum w_t), as PyTorch's weighted cross-entropy.
- `diversity_loss`: the diversity regulariser, the negative mean absolute difference between the
  block features of every pair of samples, summed over pairs and blocks and divided by
  L (L - 1) / 2 with L the number of blocks, as the reference normalises it (lambda 0.15 is
  tuned for that scale).
- `branch_weights`: content 0.5 / L, layout 0.5 / L, low-level 1 / L with L the discriminator's
  blocks.
"""

import tensorflow as tf

GAN_LOSSES = ("bce", "hinge")


def branch_weights(num_blocks_d):
    """{"low_level", "content", "layout"} weights of the summed per-block losses."""
    return {
        "low_level": 1.0 / num_blocks_d,
        "content": 0.5 / num_blocks_d,
        "layout": 0.5 / num_blocks_d,
    }


def adversarial_loss(logits, real, for_discriminator, kind="bce"):
    """The loss of one decision map.

    Args:
        logits: decisions, any shape.
        real: whether the target is "real" (the generator's loss always targets real).
        for_discriminator: D's loss (hinge margins) or G's.
        kind: "bce" (binary cross-entropy with logits against 1 / 0) or "hinge".
    """
    logits = tf.cast(logits, tf.float32)
    if kind == "bce":
        target = tf.ones_like(logits) if real else tf.zeros_like(logits)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits))
    if kind == "hinge":
        if not for_discriminator:
            if not real:
                raise ValueError("the generator's loss targets real")
            return -tf.reduce_mean(logits)
        if real:
            return tf.reduce_mean(tf.nn.relu(1.0 - logits))
        return tf.reduce_mean(tf.nn.relu(1.0 + logits))
    raise ValueError(f"gan loss {kind!r} is not one of {', '.join(GAN_LOSSES)}")


def content_class_weights(masks):
    """[K + 1] weights: 1 / pixel count of each class in masks [N, H, W, K] (0 when absent),
    then 1 for "fake"."""
    counts = tf.reduce_sum(tf.stop_gradient(tf.cast(masks, tf.float32)), axis=[0, 1, 2])  # [K]
    weights = tf.math.divide_no_nan(tf.ones_like(counts), counts)
    return tf.concat([weights, [1.0]], axis=0)


def content_segmentation_loss(logits, masks, real):
    """Weighted (K + 1)-way cross-entropy of the content decisions.

    Args:
        logits: [K*N, h, w, K + 1] decisions on the class-masked copies, class-major (copy k of
            sample n at row k * N + n).
        masks: [N, H, W, K] the masks the copies were made with (for the class weights).
        real: targets are class k for copy k (real) or K ("fake") for every copy.
    """
    logits = tf.cast(logits, tf.float32)
    num_classes = tf.shape(masks)[-1]
    n = tf.shape(masks)[0]
    rows = tf.shape(logits)[0]
    if real:
        target = tf.repeat(tf.range(num_classes), n)  # [K*N], class-major
    else:
        target = tf.fill([rows], num_classes)
    target = tf.broadcast_to(target[:, None, None], tf.shape(logits)[:3])  # [K*N, h, w]
    weights = tf.gather(content_class_weights(masks), target)  # [K*N, h, w]
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
    return tf.math.divide_no_nan(tf.reduce_sum(weights * nll), tf.reduce_sum(weights))


def pairwise_l1(features):
    """Mean over pairs k < m of mean |f[k] - f[m]| for features [N, ...] (0 when N < 2)."""
    f = tf.cast(features, tf.float32)
    n = tf.shape(f)[0]
    flat = tf.reshape(f, tf.stack([n, -1]))  # [N, D]
    diffs = tf.reduce_mean(tf.abs(flat[:, None, :] - flat[None, :, :]), axis=-1)  # [N, N]
    upper = tf.linalg.band_part(tf.ones_like(diffs), 0, -1) - tf.linalg.band_part(
        tf.ones_like(diffs), 0, 0
    )  # 1 where k < m
    return tf.reduce_sum(diffs * upper), tf.reduce_sum(upper)


def diversity_loss(features):
    """The diversity regulariser of a list of L block features [N, h_l, w_l, C_l].

    -(2 / (L (L - 1))) * sum_l sum_{k < m} mean |f_l[k] - f_l[m]|; minimising it pushes the
    features of different z apart at every block.
    """
    num_blocks = len(features)
    if num_blocks < 2:
        raise ValueError("the diversity loss needs at least 2 blocks")
    total = tf.add_n([pairwise_l1(f)[0] for f in features])
    return -total * 2.0 / (num_blocks * (num_blocks - 1))


def mean_pairwise_distance(features):
    """Mean over blocks and pairs of mean |f[k] - f[m]| (the diversity shown in TensorBoard)."""
    values = []
    for f in features:
        total, pairs = pairwise_l1(f)
        values.append(tf.math.divide_no_nan(total, pairs))
    return tf.add_n(values) / len(values)
