"""End-to-end fine-tuning of the layout synthesizer and the image synthesizer (stage=e2e).

A trained layout GAN (PaletteLayoutGAN at its last level) and a trained SPADE GAN (SPADEGAN,
no VAE) train together. One iteration on a batch of real (image, label map) pairs, whose label
maps also give the real soft layouts and palettes:

- D steps: the layout critic (WGAN-GP, as the layout stage), SPADE's conditional multiscale
  discriminator (hinge, on real pairs and SPADE's images of the real label maps), and an extra
  UNCONDITIONAL multiscale discriminator (hinge) telling real images from images that SPADE
  made from generated layouts.
- G step, one tape over both generators: the layout losses (WGAN, entropy, spread, KL) + the
  SPADE losses on the real label maps as usual (hinge + feature matching + VGG) + lambda_e2e
  (0.01) x the hinge generator loss of the unconditional discriminator on images made from
  generated layouts. That last term reaches the layout generator through SPADE.

Generated layouts reach SPADE as one-hot maps with a straight-through gradient:
one_hot(argmax(soft)) + soft - stop_gradient(soft). The forward pass is exactly the one-hot map
of the argmax layout, i.e. what SPADE was trained on and what the exported pipeline feeds it;
the backward pass is the soft layout's. (Feeding SPADE the soft layout instead would show it
maps it never saw in training.) SPADE's "don't care" channel, when it has one, is all zero for
generated layouts.

Fine-tuning keeps learning rates constant: the layout networks use this run's lr / betas,
SPADE's networks the image run's (with its TTUR), the unconditional discriminator SPADE's D
learning rate. All randomness is keyed by (seed, step, replica, phase): resume is exact.
"""

import keras
import tensorflow as tf

from losses import gan as gan_losses
from models.palette import trainer as layout_trainer
from models.spade import networks as spade_networks
from models.spade.trainer import SPADEGAN
from training.checkpointing import variable_bundle
from training.optimizers import FusedAdam

_PHASE_IMAGE_D, _PHASE_IMAGE_G = 300, 400


def straight_through_one_hot(soft):
    """[N, H, W, C] soft layout -> one-hot of its argmax, with the soft layout's gradient."""
    hard = tf.one_hot(tf.argmax(soft, axis=-1), tf.shape(soft)[-1], dtype=soft.dtype)
    return hard + soft - tf.stop_gradient(soft)


class PaletteE2EGAN(keras.Model):
    """The layout GAN and the SPADE GAN fine-tuned end to end, with an unconditional image
    discriminator on images made from generated layouts.

    Args:
        layout_gan: a PaletteLayoutGAN (for training), or its get_config() dict; trained at
            its max_level with alpha 1.
        image_gan: a SPADEGAN without the VAE (for training), or its get_config() dict; its
            image size must be the layouts' and its classes the layouts' (+ "don't care").
        lambda_e2e: weight of the unconditional discriminator's hinge loss (0.01).
        uncond_num_D, uncond_ndf, uncond_n_layers: the unconditional multiscale discriminator
            (scales, width, layers per scale; default SPADE's discriminator's).
        seed: seed of the latents.

    Example:
        >>> gan = PaletteE2EGAN.from_run_config(config, image_config, num_classes=19)
        >>> losses = gan.train_step(
        ...     {"image": images, "label": spade_ids, "layout": soft, "proportions": palettes})
    """

    def __init__(
        self,
        *,
        layout_gan,
        image_gan,
        lambda_e2e=0.01,
        uncond_num_D=None,
        uncond_ndf=None,
        uncond_n_layers=None,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(layout_gan, dict):
            layout_gan = layout_trainer.PaletteLayoutGAN(**layout_gan)
        if isinstance(image_gan, dict):
            image_gan = SPADEGAN(**image_gan)
        self.layout_gan = layout_gan
        self.image_gan = image_gan
        self.lambda_e2e = float(lambda_e2e)
        self.uncond_num_D = int(uncond_num_D or image_gan.num_discriminators)
        self.uncond_ndf = int(uncond_ndf or image_gan.ndf)
        self.uncond_n_layers = int(uncond_n_layers or image_gan.n_layers_D)
        self.seed = int(seed)
        if not (layout_gan.for_training and image_gan.for_training):
            raise ValueError("PaletteE2EGAN trains both GANs: build them with for_training=True")
        if image_gan.use_vae:
            raise ValueError("PaletteE2EGAN fine-tunes SPADE without the VAE")
        self.level = layout_gan.max_level
        self.image_size = tuple(image_gan.image_size)
        if tuple(layout_gan.level_size(self.level)) != self.image_size:
            raise ValueError(
                f"layouts of {layout_gan.level_size(self.level)} but images of {self.image_size}"
            )
        # SPADE's channels: the layout classes, plus its "don't care" channel if it has one.
        self.dontcare_channels = image_gan.num_classes - layout_gan.num_classes
        if self.dontcare_channels not in (0, 1):
            raise ValueError(
                f"SPADE has {image_gan.num_classes} channels for {layout_gan.num_classes} classes"
            )

        # === Networks ===
        self.uncond_discriminator = spade_networks.MultiscaleDiscriminator(
            num_D=self.uncond_num_D,
            ndf=self.uncond_ndf,
            n_layers=self.uncond_n_layers,
            name="uncond_discriminator",
        )
        self.uncond_discriminator(tf.zeros((1, *self.image_size, 3)), training=False)
        # One global step: the layout GAN's (its latents are keyed by it).
        self.step = layout_gan.step

        # === Optimizer of the unconditional D: SPADE's D learning rate and betas ===
        d_lr = image_gan.lr * 2 if image_gan.ttur else image_gan.lr
        self.uncond_optimizer = FusedAdam(
            learning_rate=d_lr, beta_1=image_gan.beta1, beta_2=image_gan.beta2
        )
        self.uncond_optimizer.build(self.uncond_discriminator.trainable_variables)

    @classmethod
    def from_run_config(cls, config, image_config, *, num_classes, vgg_weights=None):
        """The model of an e2e PaletteConfig and its image run's SPADEConfig (constant learning
        rates: SPADE's decay is not continued); num_classes: the layouts' classes."""
        from models.spade.labels import num_spade_classes

        image_config = image_config.replace(decay_epoch=image_config.total_epochs)
        if vgg_weights is not None:
            image_config = image_config.replace(vgg_weights=vgg_weights)
        layout_gan = layout_trainer.PaletteLayoutGAN.from_run_config(
            config, num_classes=num_classes
        )
        image_gan = SPADEGAN.from_run_config(image_config, num_spade_classes(image_config))
        return cls(
            layout_gan=layout_gan,
            image_gan=image_gan,
            lambda_e2e=config.lambda_e2e,
            seed=config.seed,
        )

    def get_config(self):
        """The constructor arguments (the GANs as their configs), keras-hub style."""
        return {
            "layout_gan": self.layout_gan.get_config(),
            "image_gan": self.image_gan.get_config(),
            "lambda_e2e": self.lambda_e2e,
            "uncond_num_D": self.uncond_num_D,
            "uncond_ndf": self.uncond_ndf,
            "uncond_n_layers": self.uncond_n_layers,
            "seed": self.seed,
        }

    # === Inference ===

    def segmap(self, soft):
        """SPADE's input for generated soft layouts [N, H, W, C]: the straight-through one-hot
        map, with an all-zero "don't care" channel when SPADE has one."""
        hard = straight_through_one_hot(soft)  # [N, H, W, C]
        if self.dontcare_channels:
            hard = tf.concat([hard, tf.zeros_like(hard[..., :1])], axis=-1)  # [N, H, W, C + 1]
        return hard

    def generate(self, z, proportions, training=False):
        """(soft layouts [N, H, W, C], images [N, H, W, 3] in [-1, 1]) of palettes."""
        soft = self.layout_gan.generate(z, proportions, level=self.level, alpha=1.0)
        return soft, self.image_gan.generator(self.segmap(soft), training=training)

    def call(self, z, proportions, training=False):
        return self.generate(z, proportions, training=training)

    # === Training ===

    def _images_of_generated_layouts(self, n, proportions, phase, training):
        z = self.layout_gan._latents(n, phase)
        soft, layouts, masks = self.layout_gan.generator(
            z, proportions, level=self.level, alpha=1.0, training=training
        )
        images = self.image_gan.generator(self.segmap(soft), training=training)
        return soft, layouts, masks, images

    def _image_d_step(self, label, image, proportions):
        """SPADE's D (hinge on real pairs) and the unconditional D (hinge on real images vs
        images of generated layouts)."""
        n = tf.shape(image)[0]
        fake = tf.stop_gradient(self.image_gan.synthesize(label, training=True))
        generated = tf.stop_gradient(
            self._images_of_generated_layouts(n, proportions, _PHASE_IMAGE_D, True)[3]
        )
        d = self.image_gan.discriminator
        scale = self.layout_gan._replica_scale()
        with tf.GradientTape(persistent=True) as tape:
            fake_out, real_out = d.call_conditioned(label, [fake, image], training=True)
            d_loss = gan_losses.hinge_d_loss(real_out, fake_out)
            uncond_real = self.uncond_discriminator(image, training=True)
            uncond_fake = self.uncond_discriminator(generated, training=True)
            uncond_loss = gan_losses.hinge_d_loss(uncond_real, uncond_fake)
            scaled_d, scaled_uncond = d_loss * scale, uncond_loss * scale
        d_vars = d.trainable_variables
        u_vars = self.uncond_discriminator.trainable_variables
        d_grads = tape.gradient(scaled_d, d_vars)
        u_grads = tape.gradient(scaled_uncond, u_vars)
        del tape
        self.image_gan.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self.uncond_optimizer.apply_gradients(zip(u_grads, u_vars))
        return {"D_hinge": d_loss, "D_uncond": uncond_loss}

    def _g_step(self, label, image, proportions):
        """One tape over both generators: layout losses + SPADE losses + the e2e term."""
        n = tf.shape(image)[0]
        layout_vars = self.layout_gan.generator.trainable_variables
        image_vars = self.image_gan.generator.trainable_variables
        with tf.GradientTape() as tape:
            soft, layouts, masks, generated = self._images_of_generated_layouts(
                n, proportions, _PHASE_IMAGE_G, True
            )
            losses = self.layout_gan.generator_losses(
                soft, layouts, masks, proportions, self.level, 1.0
            )
            fake = self.image_gan.synthesize(label, training=True)
            fake_out, real_out = self.image_gan.discriminator.call_conditioned(
                label, [fake, image], training=True
            )
            losses["G_GAN"] = gan_losses.hinge_g_loss(fake_out)
            losses["G_GAN_Feat"] = self.image_gan.lambda_features * (
                gan_losses.feature_matching_loss(real_out, fake_out)
            )
            if self.image_gan.vgg_loss is not None:
                losses["G_VGG"] = self.image_gan.lambda_vgg * self.image_gan.vgg_loss(fake, image)
            losses["G_e2e"] = self.lambda_e2e * gan_losses.hinge_g_loss(
                self.uncond_discriminator(generated, training=True)
            )
            total = tf.add_n(list(losses.values()))
            scaled = total * self.layout_gan._replica_scale()
        grads = layout_trainer._gradients(tape, scaled, layout_vars + image_vars)
        self.layout_gan.g_optimizer.apply_gradients(zip(grads[: len(layout_vars)], layout_vars))
        self.image_gan.g_optimizer.apply_gradients(zip(grads[len(layout_vars) :], image_vars))
        losses["G_total"] = total
        return losses

    def train_step(self, batch):
        """One iteration on a per-replica batch {"image": [N, H, W, 3] in [-1, 1], "label":
        [N, H, W] SPADE channel ids, "layout": [N, H, W, C] real soft layouts, "proportions":
        [N, C] their palettes}. Returns the per-replica loss terms (weighted)."""
        image = tf.cast(batch["image"], tf.float32)
        label = tf.cast(batch["label"], tf.int32)
        real = tf.cast(batch["layout"], tf.float32)
        proportions = tf.cast(batch["proportions"], tf.float32)
        layout_d = self.layout_gan.discriminator
        losses, d_grads = self.layout_gan._d_level(self.level, real, proportions, 1.0)
        self.layout_gan.d_optimizer.apply_gradients(zip(d_grads, layout_d.trainable_variables))
        losses.update(self._image_d_step(label, image, proportions))
        losses.update(self._g_step(label, image, proportions))
        return {k: tf.cast(v, tf.float32) for k, v in losses.items()}

    def learning_rates(self):
        """Current learning rates (for TensorBoard)."""
        return {
            "lr_layout_G": self.layout_gan.g_optimizer.learning_rate,
            "lr_layout_D": self.layout_gan.d_optimizer.learning_rate,
            "lr_image_G": self.image_gan.g_optimizer.learning_rate,
            "lr_image_D": self.image_gan.d_optimizer.learning_rate,
            "lr_uncond_D": self.uncond_optimizer.learning_rate,
        }

    def checkpoint_objects(self):
        """What a training checkpoint holds (names are part of the checkpoint format)."""
        return {
            "layout_generator": variable_bundle(self.layout_gan.generator),
            "layout_discriminator": variable_bundle(self.layout_gan.discriminator),
            "image_generator": variable_bundle(self.image_gan.generator),
            "image_discriminator": variable_bundle(self.image_gan.discriminator),
            "uncond_discriminator": variable_bundle(self.uncond_discriminator),
            "layout_g_optimizer": self.layout_gan.g_optimizer,
            "layout_d_optimizer": self.layout_gan.d_optimizer,
            "image_g_optimizer": self.image_gan.g_optimizer,
            "image_d_optimizer": self.image_gan.d_optimizer,
            "uncond_optimizer": self.uncond_optimizer,
            "step": self.step,
        }

    def parameter_counts(self):
        """Trainable parameter count per network."""
        counts = {f"layout_{k}": v for k, v in self.layout_gan.parameter_counts().items()}
        counts.update({f"image_{k}": v for k, v in self.image_gan.parameter_counts().items()})
        counts["uncond_discriminator"] = int(
            sum(int(tf.size(v)) for v in self.uncond_discriminator.trainable_variables)
        )
        return counts
