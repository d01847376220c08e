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


def spade_network_kwargs(config, num_classes):
    """Arguments of models.spade.networks.build_spade_networks from a resolved config."""
    return dict(
        num_classes=num_classes,
        # The generator's crop_size is the WIDTH (the reference's convention); the config's is
        # the height: (crop_size, crop_width) = (H, W), aspect_ratio = W / H.
        crop_size=config.crop_width,
        aspect_ratio=config.aspect_ratio,
        ngf=config.ngf,
        ndf=config.ndf,
        z_dim=config.z_dim,
        use_vae=config.use_vae,
        num_upsampling_layers=config.num_upsampling_layers,
        norm_G=config.norm_G,
        num_hidden=config.spade_hidden,
        num_D=config.num_discriminators,
        n_layers_D=config.n_layers_D,
        encoder_ndf=config.ndf,
        encoder_input_size=config.encoder_input_size,
    )


class SPADEGAN(keras.Model):
    """Generator, multiscale discriminator and optional VAE encoder trained together.

    Args:
        config: the resolved train config (flags.resolve_train_config).
        num_classes: label values 0..num_classes-1 (one-hot channels; 151 for ADE20K).
        steps_per_epoch: training steps per epoch, to turn the epoch schedule into steps.
        for_training: False builds G (and E) only, for inference.

    Example:
        >>> gan = SPADEGAN(config, num_classes=151, steps_per_epoch=100)
        >>> losses = gan.train_step({"image": images, "label": labels})
    """

    def __init__(self, config, num_classes, steps_per_epoch=1, for_training=True, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.num_classes = int(num_classes)
        self.use_vae = bool(config.use_vae)
        self.seed = int(config.seed)
        # G takes the integer labels and computes its convs over the one-hot map by lookup
        # (models.layers.one_hot_conv), and D's first conv does the same for the map's
        # channels; False feeds G the one-hot map and D the concatenated (map, image) pairs:
        # the same function computed densely, as the reference does (the benchmark profiles
        # that graph for the model's FLOPs).
        self.one_hot_lookup = True

        # === Networks ===
        nets = spade.build_spade_networks(**spade_network_kwargs(config, num_classes))
        self.generator = nets["generator"]
        self.encoder = nets["encoder"]
        self.discriminator = nets["discriminator"] if for_training else None
        self.vgg_loss = None
        if for_training and config.vgg_weights != "none" and config.lambda_vgg > 0:
            from losses.perceptual import VGGPerceptualLoss  # heavy import, training only

            self.vgg_loss = VGGPerceptualLoss(weights=config.vgg_weights)

        # The global step of training, saved in checkpoints (resume continues from it).
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        if not for_training:
            return

        # === Optimizers (TTUR: G at lr/2, D at lr*2; Adam betas 0 / 0.9) ===
        lr = config.lr
        g_lr, d_lr = (lr / 2, lr * 2) if config.ttur else (lr, lr)
        constant = config.decay_epoch * steps_per_epoch
        decay = (config.total_epochs - config.decay_epoch) * steps_per_epoch
        self.g_optimizer = self._make_optimizer(ConstantThenLinearDecay(g_lr, constant, decay))
        self.d_optimizer = self._make_optimizer(ConstantThenLinearDecay(d_lr, constant, decay))
        # Built here, i.e. inside strategy.scope() when the caller opened one (Keras 3 +
        # MirroredStrategy need the slots created in the scope, before the first step).
        self.g_optimizer.build(self.g_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def _make_optimizer(self, schedule):
        optimizer = FusedAdam(  # keras Adam, fused update
            learning_rate=schedule,
            beta_1=self.config.beta1,
            beta_2=self.config.beta2,
        )
        if self.config.mixed_precision == "mixed_float16":
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
            z = tf.random.normal((tf.shape(label)[0], self.config.z_dim))
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
        cfg = self.config
        variables = self.g_variables
        with tf.GradientTape() as tape:
            fake, mu, logvar = self._fake(label, real, phase=0, training=True)
            fake_out, real_out = self._discriminate(label, fake, real)
            losses = {"G_GAN": gan_losses.hinge_g_loss(fake_out)}
            losses["G_GAN_Feat"] = cfg.lambda_features * gan_losses.feature_matching_loss(
                real_out, fake_out
            )
            if self.vgg_loss is not None:
                losses["G_VGG"] = cfg.lambda_vgg * self.vgg_loss(fake, real)
            if self.use_vae:
                losses["KLD"] = cfg.lambda_kld * gan_losses.kl_divergence(mu, logvar)
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
