"""SPADE losses: pure functions of tensors returning float32 scalars.

Loss weights (lambda_feat = 10, lambda_vgg = 10, lambda_kld = 0.05) are applied by the caller.
"""

from losses.gan import (
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    kl_divergence,
    split_real_fake,
)
from losses.perceptual import VGGPerceptualLoss

__all__ = [
    "VGGPerceptualLoss",
    "feature_matching_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "kl_divergence",
    "split_real_fake",
]
