"""SPADE / GauGAN training logic: one keras.Model holding G, D, (E) and their optimizers.

The training loop (training/loop.py) calls `train_step` inside `strategy.run`; everything the
paper specifies about one iteration lives here: one G step (GAN hinge + feature matching + VGG +
KL, encoder trained with G) then one D step on a freshly generated, stopped-gradient fake.
"""

import keras
import tensorflow as tf

from losses import gan as gan_losses
from models.spade import networks as spade
from training.checkpointing import variable_bundle
from training.optimizers import FusedAdam


@keras.saving.register_keras_serializable(package="semsynth")
class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The reference schedule: `initial` for `constant_steps`, then linear to 0 over `decay_steps`.

    Args:
        initial: learning rate of the constant phase.
        constant_steps: steps at the initial rate (the reference's niter epochs in steps).
        decay_steps: steps of the linear decay to zero (niter_decay epochs in steps); 0 = none.
    """

    def __init__(self, initial, constant_steps, decay_steps):
        self.initial = float(initial)
        self.constant_steps = int(constant_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.decay_steps <= 0:
            return tf.fill([], self.initial)
        progress = (step - self.constant_steps) / float(self.decay_steps)
        return self.initial * (1.0 - tf.clip_by_value(progress, 0.0, 1.0))

    def get_config(self):
        return {
            "initial": self.initial,
            "constant_steps": self.constant_steps,
            "decay_steps": self.decay_steps,
        }


class SPADEGAN(keras.Model):
    """Generator, multiscale discriminator and optional VAE encoder trained together.

    Args:
        num_classes: label values 0..num_classes-1 (one-hot channels; 151 for ADE20K).
        crop_size: height of the training crops and synthesized images (px).
        aspect_ratio: their width / height (Cityscapes: 2); width = round(crop_size * ratio).
        ngf: generator base width (the first blocks use 16 * ngf channels).
        ndf: discriminator and encoder base width.
        z_dim: latent size of the VAE style code.
        use_vae: train with the VAE image encoder (style control).
        num_upsampling_layers: "normal" (5 x2 upsamplings), "more" (6) or "most" (7).
        norm_G: SPADE's parameter-free norm: "syncbatch", "batch" or "instance".
        spade_hidden: width of the shared conv inside each SPADE layer.
        num_discriminators: scales of the multiscale PatchGAN.
        n_layers_D: conv layers per PatchGAN.
        encoder_input_size: the VAE encoder resizes its input to this (px).
        lambda_features: weight of the feature-matching loss.
        lambda_vgg: weight of the VGG19 perceptual loss (0 or vgg_weights "none": off).
        lambda_kld: weight of the KL divergence (with use_vae).
        vgg_weights: VGG19 weights: "imagenet", a local weights file, or "none".
        lr: base learning rate (TTUR: G lr / 2, D lr * 2).
        beta1, beta2: Adam betas (SPADE's code: 0 and 0.9).
        ttur: two time-scale update rule.
        constant_steps: steps at the initial learning rate.
        decay_steps: steps of the linear decay to zero after them (0: none).
        mixed_precision: the Keras policy in use ("mixed_float16" adds loss scaling).
        seed: seed of the per-step noise (VAE reparameterisation).
        for_training: False builds G (and E) only, for inference.

    Example:
        >>> gan = SPADEGAN(num_classes=151, crop_size=256, ngf=64, ndf=64)
        >>> losses = gan.train_step({"image": images, "label": labels})
        >>> gan = SPADEGAN.from_run_config(config, num_classes=151, steps_per_epoch=100)
    """

    def __init__(
        self,
        *,
        num_classes,
        crop_size,
        aspect_ratio=1.0,
        ngf=64,
        ndf=64,
        z_dim=256,
        use_vae=False,
        num_upsampling_layers="normal",
        norm_G="syncbatch",
        spade_hidden=128,
        num_discriminators=2,
        n_layers_D=4,
        encoder_input_size=256,
        lambda_features=10.0,
        lambda_vgg=10.0,
        lambda_kld=0.05,
        vgg_weights="none",
        lr=2e-4,
        beta1=0.0,
        beta2=0.9,
        ttur=True,
        constant_steps=0,
        decay_steps=0,
        mixed_precision="none",
        seed=0,
        for_training=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Config ===
        self.num_classes = int(num_classes)
        self.crop_size = int(crop_size)
        self.aspect_ratio = float(aspect_ratio)
        # (height, width) of the images; the networks take the width (the reference's crop_size).
        self.image_size = (self.crop_size, int(round(self.crop_size * self.aspect_ratio)))
        self.ngf = ngf
        self.ndf = ndf
        self.z_dim = z_dim
        self.use_vae = bool(use_vae)
        self.num_upsampling_layers = num_upsampling_layers
        self.norm_G = norm_G
        self.spade_hidden = spade_hidden
        self.num_discriminators = num_discriminators
        self.n_layers_D = n_layers_D
        self.encoder_input_size = encoder_input_size
        self.lambda_features = float(lambda_features)
        self.lambda_vgg = float(lambda_vgg)
        self.lambda_kld = float(lambda_kld)
        self.vgg_weights = vgg_weights
        self.lr = float(lr)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.ttur = bool(ttur)
        self.constant_steps = int(constant_steps)
        self.decay_steps = int(decay_steps)
        self.mixed_precision = mixed_precision
        self.seed = int(seed)
        self.for_training = bool(for_training)
        # G takes the integer labels and computes its convs over the one-hot map by lookup
        # (models.layers.one_hot_conv), and D's first conv does the same for the map's
        # channels; False feeds G the one-hot map and D the concatenated (map, image) pairs:
        # the same function computed densely, as the reference does (the benchmark profiles
        # that graph for the model's FLOPs).
        self.one_hot_lookup = True

        # === Networks ===
        nets = spade.build_spade_networks(
            num_classes=self.num_classes,
            crop_size=self.image_size[1],
            aspect_ratio=self.aspect_ratio,
            ngf=ngf,
            ndf=ndf,
            z_dim=z_dim,
            use_vae=self.use_vae,
            num_upsampling_layers=num_upsampling_layers,
            norm_G=norm_G,
            num_hidden=spade_hidden,
            num_D=num_discriminators,
            n_layers_D=n_layers_D,
            encoder_ndf=ndf,
            encoder_input_size=encoder_input_size,
        )
        self.generator = nets["generator"]
        self.encoder = nets["encoder"]
        self.discriminator = nets["discriminator"] if for_training else None
        self.vgg_loss = None
        if for_training and vgg_weights != "none" and lambda_vgg > 0:
            from losses.perceptual import VGGPerceptualLoss  # heavy import, training only

            self.vgg_loss = VGGPerceptualLoss(weights=vgg_weights)

        # The global step of training, saved in checkpoints (resume continues from it).
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        if not for_training:
            return

        # === Optimizers (TTUR: G at lr/2, D at lr*2; Adam betas 0 / 0.9) ===
        g_lr, d_lr = (self.lr / 2, self.lr * 2) if self.ttur else (self.lr, self.lr)
        self.g_optimizer = self._make_optimizer(
            ConstantThenLinearDecay(g_lr, self.constant_steps, self.decay_steps)
        )
        self.d_optimizer = self._make_optimizer(
            ConstantThenLinearDecay(d_lr, self.constant_steps, self.decay_steps)
        )
        # Built here, i.e. inside strategy.scope() when the caller opened one (Keras 3 +
        # MirroredStrategy need the slots created in the scope, before the first step).
        self.g_optimizer.build(self.g_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @classmethod
    def from_run_config(cls, config, num_classes, steps_per_epoch=1, for_training=True):
        """The GAN of a resolved SPADEConfig: the epoch schedule becomes steps."""
        return cls(
            num_classes=num_classes,
            crop_size=config.crop_size,
            aspect_ratio=config.aspect_ratio,
            ngf=config.ngf,
            ndf=config.ndf,
            z_dim=config.z_dim,
            use_vae=config.use_vae,
            num_upsampling_layers=config.num_upsampling_layers,
            norm_G=config.norm_G,
            spade_hidden=config.spade_hidden,
            num_discriminators=config.num_discriminators,
            n_layers_D=config.n_layers_D,
            encoder_input_size=config.encoder_input_size,
            lambda_features=config.lambda_features,
            lambda_vgg=config.lambda_vgg,
            lambda_kld=config.lambda_kld,
            vgg_weights=config.vgg_weights,
            lr=config.lr,
            beta1=config.beta1,
            beta2=config.beta2,
            ttur=config.ttur,
            constant_steps=config.decay_epoch * steps_per_epoch,
            decay_steps=(config.total_epochs - config.decay_epoch) * steps_per_epoch,
            mixed_precision=config.mixed_precision,
            seed=config.seed,
            for_training=for_training,
        )

    def get_config(self):
        """The constructor arguments (one attribute each), keras-hub style."""
        return {
            "num_classes": self.num_classes,
            "crop_size": self.crop_size,
            "aspect_ratio": self.aspect_ratio,
            "ngf": self.ngf,
            "ndf": self.ndf,
            "z_dim": self.z_dim,
            "use_vae": self.use_vae,
            "num_upsampling_layers": self.num_upsampling_layers,
            "norm_G": self.norm_G,
            "spade_hidden": self.spade_hidden,
            "num_discriminators": self.num_discriminators,
            "n_layers_D": self.n_layers_D,
            "encoder_input_size": self.encoder_input_size,
            "lambda_features": self.lambda_features,
            "lambda_vgg": self.lambda_vgg,
            "lambda_kld": self.lambda_kld,
            "vgg_weights": self.vgg_weights,
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "ttur": self.ttur,
            "constant_steps": self.constant_steps,
            "decay_steps": self.decay_steps,
            "mixed_precision": self.mixed_precision,
            "seed": self.seed,
            "for_training": self.for_training,
        }

    def _make_optimizer(self, schedule):
        optimizer = FusedAdam(  # keras Adam, fused update
            learning_rate=schedule,
            beta_1=self.beta1,
            beta_2=self.beta2,
        )
        if self.mixed_precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    @property
    def g_variables(self):
        """G's trainable variables plus the encoder's (the encoder trains with G)."""
        variables = list(self.generator.trainable_variables)
        if self.encoder is not None:
            variables += self.encoder.trainable_variables
        return variables

    def one_hot(self, label):
        """[N, H, W] int label map -> [N, H, W, num_classes] float32 one-hot."""
        return tf.one_hot(tf.cast(label, tf.int32), self.num_classes, dtype=tf.float32)

    # === Inference ===

    def call(self, label, z=None, training=False):
        return self.synthesize(label, z=z, training=training)

    def synthesize(self, label, z=None, style_image=None, training=False):
        """Label map [N, H, W] -> image [N, H, W, 3] float32 in [-1, 1].

        With a VAE, z comes from `style_image` (the encoder's mean: deterministic style) when
        given, else from the caller, else N(0, I).
        """
        label = tf.cast(label, tf.int32)  # [N, H, W]
        if self.use_vae and z is None and style_image is not None:
            z, _ = self.encoder(style_image, training=training)
        if self.use_vae and z is None:
            z = tf.random.normal((tf.shape(label)[0], self.z_dim))
        return self.generator(
            self._generator_input(label), z=z if self.use_vae else None, training=training
        )

    def _generator_input(self, label):
        return label if self.one_hot_lookup else self.one_hot(label)

    # === Training ===

    def _noise_seed(self, phase):
        # Stateless noise keyed by (seed, replica, phase, step): a resumed run draws exactly the
        # noise an uninterrupted run would, and replicas draw different noise.
        replica = tf.distribute.get_replica_context()
        replica_id = 0 if replica is None else replica.replica_id_in_sync_group
        base = tf.cast(self.seed * 1000 + phase, tf.int64) + 10 * tf.cast(replica_id, tf.int64)
        return tf.stack([base, tf.cast(self.step, tf.int64)])

    def _fake(self, label, real, phase, training):
        """Runs E (with the reparameterisation trick) and G on the [N, H, W] int labels.

        Returns (fake, mu, logvar)."""
        mu = logvar = z = None
        if self.use_vae:
            mu, logvar = self.encoder(real, training=training)
            eps = tf.random.stateless_normal(tf.shape(mu), seed=self._noise_seed(phase))
            z = spade.reparameterize(mu, logvar, eps)
        fake = self.generator(self._generator_input(label), z=z, training=training)
        return fake, mu, logvar

    def _discriminate(self, label, fake, real):
        """D on the (map, fake) and (map, real) pairs -> (fake outputs, real outputs)."""
        if not self.one_hot_lookup:
            # As the reference computes it: both pairs, one-hot map and image concatenated, in
            # one batch.
            segmap = self.one_hot(label)  # [N, H, W, C]
            pairs = tf.concat(
                [tf.concat([segmap, fake], axis=-1), tf.concat([segmap, real], axis=-1)], axis=0
            )  # [2N, H, W, C + 3]
            outputs = self.discriminator(pairs, training=True)
            return gan_losses.split_real_fake(outputs, tf.shape(fake)[0])
        # The same function (D's norms are per sample): the map's share of D's first conv is
        # computed once for both pairs, by lookup from the labels, and no gradient is computed
        # for the map's channels.
        fake_out, real_out = self.discriminator.call_conditioned(label, [fake, real], training=True)
        return fake_out, real_out

    def _scaled(self, loss, optimizer):
        # Gradients are summed over replicas by the optimizer: divide by their number so the
        # update uses the mean over the global batch.
        loss = loss / tf.distribute.get_strategy().num_replicas_in_sync
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            loss = optimizer.scale_loss(loss)
        return loss

    def _g_step(self, label, real):
        variables = self.g_variables
        with tf.GradientTape() as tape:
            fake, mu, logvar = self._fake(label, real, phase=0, training=True)
            fake_out, real_out = self._discriminate(label, fake, real)
            losses = {"G_GAN": gan_losses.hinge_g_loss(fake_out)}
            losses["G_GAN_Feat"] = self.lambda_features * gan_losses.feature_matching_loss(
                real_out, fake_out
            )
            if self.vgg_loss is not None:
                losses["G_VGG"] = self.lambda_vgg * self.vgg_loss(fake, real)
            if self.use_vae:
                losses["KLD"] = self.lambda_kld * gan_losses.kl_divergence(mu, logvar)
            total = tf.add_n(list(losses.values()))
            scaled = self._scaled(total, self.g_optimizer)  # inside the tape: differentiable
        grads = tape.gradient(scaled, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        losses["G_total"] = total
        return losses, [g for g in grads if g is not None]

    def _d_step(self, label, real):
        fake, _, _ = self._fake(label, real, phase=1, training=True)
        fake = tf.stop_gradient(fake)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            fake_out, real_out = self._discriminate(label, fake, real)
            loss = gan_losses.hinge_d_loss(real_out, fake_out)
            scaled = self._scaled(loss, self.d_optimizer)
        grads = tape.gradient(scaled, variables)
        self.d_optimizer.apply_gradients(zip(grads, variables))
        return {"D_hinge": loss}

    def train_step(self, batch):
        """One iteration on a per-replica batch {"image": [N,H,W,3], "label": [N,H,W]}.

        Returns the per-replica loss terms (float32 scalars, already lambda-weighted).
        """
        label = tf.cast(batch["label"], tf.int32)  # [N, H, W]: G and D take the labels
        real = tf.cast(batch["image"], tf.float32)  # [N, H, W, 3]
        losses, g_grads = self._g_step(label, real)
        # The D step starts once G's gradients exist. TF runs an op as soon as its inputs are
        # ready, and the D step's fake generation needs only the labels and each layer's
        # updated weights: without this its SPADE modulation maps would be computed during G's
        # backward pass and held there, at the step's peak memory (~0.3 GiB at 256 px).
        with tf.control_dependencies([tf.group(*g_grads)]):  # one edge per op, not hundreds
            losses.update(self._d_step(label, real))
        return {k: tf.cast(v, tf.float32) for k, v in losses.items()}

    def learning_rates(self):
        """Current learning rates (for TensorBoard)."""
        return {
            "lr_G": self.g_optimizer.learning_rate,
            "lr_D": self.d_optimizer.learning_rate,
        }

    def checkpoint_objects(self):
        """What a training checkpoint holds (names are part of the checkpoint format)."""
        objects = {"generator": variable_bundle(self.generator), "step": self.step}
        if self.encoder is not None:
            objects["encoder"] = variable_bundle(self.encoder)
        if self.discriminator is not None:
            objects["discriminator"] = variable_bundle(self.discriminator)
            objects["g_optimizer"] = self.g_optimizer
            objects["d_optimizer"] = self.d_optimizer
        return objects

    def parameter_counts(self):
        """Trainable parameter count per network."""
        nets = {"generator": self.generator, "discriminator": self.discriminator}
        if self.encoder is not None:
            nets["encoder"] = self.encoder
        return {
            name: int(sum(int(tf.size(v)) for v in net.trainable_variables))
            for name, net in nets.items()
            if net is not None
        }
