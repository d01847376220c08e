"""OSMIS / SIV-GAN training logic: G, D, the EMA of G, their optimizers and one iteration.

One iteration, as in the reference: a G step, then a D step.

- G step: z -> multi-scale images (+ mask) -> differentiable augmentation (one draw for the
  images and the mask) -> D without feature augmentation; the adversarial losses of the three
  branches target "real" (with masks the content branch targets each copy's class k), weighted
  low-level 1 / L, content 0.5 / L, layout 0.5 / L (L = D's blocks), plus lambda_diversity times
  the diversity regulariser on the blocks' features.
- D step: the real batch (the one image, or frames, at the finest scale and bilinear halvings)
  augmented, through D with feature augmentation; then fresh fakes (stopped gradient) augmented,
  through D without it; real targets "real" / class k, fake targets "fake".
- Generated masks reach D as straight-through hard masks: Bernoulli samples of the class
  probabilities for the first `bernoulli_warmup` steps, the argmax afterwards (the gradient is
  that of the soft mask).
- After both steps the EMA generator moves: ema = decay * ema + (1 - decay) * g.

All randomness (z, augmentation, feature augmentation, Bernoulli masks) is stateless, keyed by
(seed, step, replica, phase), so a resumed run continues exactly as an uninterrupted one. Losses
are averaged over the global batch (divided by the number of replicas before the optimizers sum
the replicas' gradients).
"""

import keras
import tensorflow as tf

from losses import osmis as osmis_losses
from models.osmis import augment as augment_lib
from models.osmis.networks import (
    OSMISDiscriminator,
    OSMISGenerator,
    count_parameters,
    resize_bilinear_half,
)
from training.checkpointing import variable_bundle
from training.optimizers import FusedAdam

# Phases keying the stateless random streams of one step (any distinct integers).
_PHASE_G, _PHASE_D_REAL, _PHASE_D_FAKE = 100, 200, 300
_Z, _AUG, _FA, _HARD = range(4)


class OSMISGAN(keras.Model):
    """The OSMIS generator (images + masks; SIV-GAN without masks), its EMA and the discriminator.

    Args:
        image_size: (H, W) of the training images and the generator's output.
        noise_shape: (h0, w0) of the generator's noise map.
        num_blocks: generator blocks.
        num_blocks_d: discriminator blocks; num_blocks_d0 of them low-level.
        num_classes: K mask classes; 0 trains SIV-GAN (images only).
        z_dim: length of z.
        ch_g, ch_d: width multipliers.
        lr, beta1, beta2: Adam settings of G and D.
        gan_loss: "bce" or "hinge".
        lambda_diversity: weight of the diversity regulariser.
        ema_decay: EMA decay per step (0: the EMA generator copies G).
        aug_prob: probability of each differentiable augmentation.
        aug_colour: whether the augmentation also changes the images' colour (False: geometric
            transforms only, as in the reference).
        prob_fa_content, prob_fa_layout: feature augmentation probabilities.
        bernoulli_warmup: steps with Bernoulli-sampled generated masks.
        seed: seed of the stateless random streams.
        for_training: False builds the EMA generator only (synthesis from a checkpoint).

    Example:
        >>> gan = OSMISGAN.from_run_config(PRESETS["tiny"], layout=layout, num_classes=4)
        >>> losses = gan.train_step({"image": images, "mask": masks})
        >>> images, masks = gan.sample(tf.random.normal((8, gan.z_dim)))
    """

    def __init__(
        self,
        *,
        image_size,
        noise_shape,
        num_blocks,
        num_blocks_d,
        num_blocks_d0,
        num_classes=0,
        z_dim=64,
        ch_g=32,
        ch_d=32,
        lr=2e-4,
        beta1=0.5,
        beta2=0.999,
        gan_loss="bce",
        lambda_diversity=0.15,
        ema_decay=0.9999,
        aug_prob=0.7,
        aug_colour=True,
        prob_fa_content=0.4,
        prob_fa_layout=0.4,
        bernoulli_warmup=15000,
        seed=0,
        for_training=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gan_loss not in osmis_losses.GAN_LOSSES:
            raise ValueError(f"gan_loss={gan_loss!r} must be one of {osmis_losses.GAN_LOSSES}")
        self.image_size = tuple(int(s) for s in image_size)
        self.noise_shape = tuple(int(s) for s in noise_shape)
        self.num_blocks = int(num_blocks)
        self.num_blocks_d = int(num_blocks_d)
        self.num_blocks_d0 = int(num_blocks_d0)
        self.num_classes = int(num_classes)
        self.z_dim = int(z_dim)
        self.ch_g = ch_g
        self.ch_d = ch_d
        self.lr = float(lr)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.gan_loss = gan_loss
        self.lambda_diversity = float(lambda_diversity)
        self.ema_decay = float(ema_decay)
        self.aug_prob = float(aug_prob)
        self.aug_colour = bool(aug_colour)
        self.prob_fa_content = float(prob_fa_content)
        self.prob_fa_layout = float(prob_fa_layout)
        self.bernoulli_warmup = int(bernoulli_warmup)
        self.seed = int(seed)
        self.for_training = bool(for_training)

        # === Networks ===
        generator_args = dict(
            noise_shape=self.noise_shape,
            num_blocks=self.num_blocks,
            num_classes=self.num_classes,
            z_dim=self.z_dim,
            ch_g=ch_g,
        )
        if tuple(OSMISGenerator(**generator_args).output_size) != self.image_size:
            raise ValueError(
                f"image_size {self.image_size} is not noise_shape {self.noise_shape} * "
                f"2 ** {self.num_blocks - 1}"
            )
        self.generator_ema = OSMISGenerator(**generator_args, name="generator_ema")
        self.generator_ema.build((None, self.z_dim))
        self.generator_ema.trainable = False
        # The global step of training, saved in checkpoints (resume continues from it).
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.generator = self.discriminator = None
        if not self.for_training:
            return
        self.generator = OSMISGenerator(**generator_args, name="generator")
        self.generator.build((None, self.z_dim))
        self.discriminator = OSMISDiscriminator(
            num_blocks=self.num_blocks_d,
            num_blocks_ll=self.num_blocks_d0,
            num_classes=self.num_classes,
            ch_d=ch_d,
            prob_fa_content=self.prob_fa_content,
            prob_fa_layout=self.prob_fa_layout,
            name="discriminator",
        )
        h, w = self.image_size
        self.discriminator.build([(None, h // 2**i, w // 2**i, 3) for i in range(num_blocks_d0)])
        for ema_variable, variable in zip(self.generator_ema.weights, self.generator.weights):
            ema_variable.assign(variable)
        self.weights_by_branch = osmis_losses.branch_weights(self.num_blocks_d)

        # === Optimizers (Adam, G and D alike) ===
        self.g_optimizer = FusedAdam(learning_rate=self.lr, beta_1=self.beta1, beta_2=self.beta2)
        self.d_optimizer = FusedAdam(learning_rate=self.lr, beta_1=self.beta1, beta_2=self.beta2)
        # Built here, i.e. inside strategy.scope() when the caller opened one.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @classmethod
    def from_run_config(cls, config, *, layout, num_classes, for_training=True):
        """The model of a resolved OSMISConfig and the Layout chosen from its input."""
        return cls(
            image_size=(layout.height, layout.width),
            noise_shape=layout.noise_shape,
            num_blocks=layout.num_blocks,
            num_blocks_d=layout.num_blocks_d,
            num_blocks_d0=layout.num_blocks_d0,
            num_classes=num_classes,
            z_dim=config.z_dim,
            ch_g=config.ch_g,
            ch_d=config.ch_d,
            lr=config.lr,
            beta1=config.beta1,
            beta2=config.beta2,
            gan_loss=config.gan_loss,
            lambda_diversity=config.lambda_diversity,
            ema_decay=config.ema_decay,
            aug_prob=config.aug_prob,
            aug_colour=config.aug_colour,
            prob_fa_content=config.prob_fa_content,
            prob_fa_layout=config.prob_fa_layout,
            bernoulli_warmup=config.bernoulli_warmup,
            seed=config.seed,
            for_training=for_training,
        )

    def get_config(self):
        """The constructor arguments (one attribute each), keras-hub style."""
        names = (
            "image_size noise_shape num_blocks num_blocks_d num_blocks_d0 num_classes z_dim ch_g "
            "ch_d lr beta1 beta2 gan_loss lambda_diversity ema_decay aug_prob aug_colour "
            "prob_fa_content prob_fa_layout bernoulli_warmup seed for_training"
        ).split()
        return {name: getattr(self, name) for name in names}

    # === Inference ===

    def sample(self, z):
        """z [N, z_dim] -> (images [N, H, W, 3] in [-1, 1], mask probabilities [N, H, W, K] or
        None) from the EMA generator (inference mode: deterministic)."""
        out = self.generator_ema.generate(z, training=False)
        return out["images"][-1], out["mask"]

    def call(self, z):
        return self.sample(z)

    # === Training ===

    def _key(self, phase, index):
        # Stateless seed of one random stream: (seed, step) folded with replica, phase, index.
        replica = tf.distribute.get_replica_context()
        replica_id = 0 if replica is None else replica.replica_id_in_sync_group
        key = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self.step, tf.int64)])
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(replica_id, tf.int64))
        return tf.random.experimental.stateless_fold_in(key, phase + index)

    @staticmethod
    def _replica_scale():
        return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync

    def _real_scales(self, image):
        """The finest image and its bilinear halvings, finest first (D's low-level inputs)."""
        scales = [image]
        for _ in range(self.num_blocks_d0 - 1):
            scales.append(resize_bilinear_half(scales[-1]))  # [N, H / 2**i, W / 2**i, 3]
        return scales

    def _fake_scales(self, images):
        """The generator's num_blocks_d0 finest images, finest first."""
        return list(reversed(images[-self.num_blocks_d0 :]))

    def _hard_mask(self, soft, phase):
        """Straight-through hard mask of generated probabilities (Bernoulli during the warm-up,
        then the argmax); the gradient is that of `soft`."""
        warmup = tf.cast(self.step < self.bernoulli_warmup, soft.dtype)
        draw = tf.random.stateless_uniform(tf.shape(soft), seed=self._key(phase, _HARD))
        bernoulli = tf.cast(draw < tf.clip_by_value(soft, 0.001, 0.999), soft.dtype)
        argmax = tf.one_hot(tf.argmax(soft, axis=-1), self.num_classes, dtype=soft.dtype)
        hard = warmup * bernoulli + (1 - warmup) * argmax
        return hard - tf.stop_gradient(soft) + soft

    def _augment(self, scales, mask, phase):
        masks = None if mask is None else [mask]
        scales, masks = augment_lib.augment(
            scales, masks, seed=self._key(phase, _AUG), prob=self.aug_prob, colour=self.aug_colour
        )
        return scales, (None if masks is None else masks[0])

    def _branch_losses(self, outputs, mask, real, for_discriminator):
        """{"low_level", "content", "layout"}: each branch's per-block losses summed, weighted."""
        groups = self.discriminator.split(outputs)
        losses = {}
        for branch, decisions in groups.items():
            total = 0.0
            for logits in decisions:
                if branch == "content" and self.num_classes:
                    total += osmis_losses.content_segmentation_loss(logits, mask, real)
                else:
                    total += osmis_losses.adversarial_loss(
                        logits, real, for_discriminator, self.gan_loss
                    )
            losses[branch] = total * self.weights_by_branch[branch]
        return losses

    def _generate(self, n, phase, training):
        z = tf.random.stateless_normal(tf.stack([n, self.z_dim]), seed=self._key(phase, _Z))
        return self.generator.generate(z, training=training)

    def _g_step(self, n):
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            out = self._generate(n, _PHASE_G, training=True)
            mask = None
            if self.num_classes:
                mask = self._hard_mask(out["mask"], _PHASE_G)
            scales, mask = self._augment(self._fake_scales(out["images"]), mask, _PHASE_G)
            outputs = self.discriminator(scales, masks=mask, training=True)
            losses = self._branch_losses(outputs, mask, real=True, for_discriminator=False)
            diversity = tf.zeros([])
            if self.lambda_diversity > 0:
                diversity = osmis_losses.diversity_loss(out["features"])
            total = tf.add_n(list(losses.values())) + self.lambda_diversity * diversity
            scaled = total * self._replica_scale()
        grads = tape.gradient(scaled, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        self.g_optimizer.apply_gradients(zip(grads, variables))
        result = {f"g_{k}": v for k, v in losses.items()}
        result.update(
            g_diversity=diversity,
            g_total=total,
            diversity=osmis_losses.mean_pairwise_distance(out["features"]),
        )
        return result

    def _d_step(self, image, mask):
        variables = self.discriminator.trainable_variables
        n = tf.shape(image)[0]
        fake = self._generate(n, _PHASE_D_FAKE, training=True)
        fake_images = [tf.stop_gradient(x) for x in fake["images"]]
        fake_mask = None
        if self.num_classes:
            fake_mask = tf.stop_gradient(self._hard_mask(fake["mask"], _PHASE_D_FAKE))
        with tf.GradientTape() as tape:
            real_scales, real_mask = self._augment(self._real_scales(image), mask, _PHASE_D_REAL)
            real_out = self.discriminator(
                real_scales,
                masks=real_mask,
                feature_augment=True,
                fa_seed=self._key(_PHASE_D_REAL, _FA),
                training=True,
            )
            real_losses = self._branch_losses(real_out, real_mask, True, True)
            fake_scales, fake_mask = self._augment(
                self._fake_scales(fake_images), fake_mask, _PHASE_D_FAKE
            )
            fake_out = self.discriminator(fake_scales, masks=fake_mask, training=True)
            fake_losses = self._branch_losses(fake_out, fake_mask, False, True)
            total = tf.add_n(list(real_losses.values()) + list(fake_losses.values()))
            scaled = total * self._replica_scale()
        grads = tape.gradient(scaled, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        self.d_optimizer.apply_gradients(zip(grads, variables))
        result = {f"d_real_{k}": v for k, v in real_losses.items()}
        result.update({f"d_fake_{k}": v for k, v in fake_losses.items()})
        result["d_total"] = total
        return result

    def _update_ema(self):
        """ema = decay * ema + (1 - decay) * g for every generator weight (SN vectors too)."""
        decay = self.ema_decay
        pairs = list(zip(self.generator_ema.weights, self.generator.weights))

        def update(strategy=None):
            for ema_variable, variable in pairs:
                ema_variable.assign(decay * ema_variable + (1.0 - decay) * variable)

        replica = tf.distribute.get_replica_context()
        if replica is None:
            update()
        else:
            replica.merge_call(update)

    def train_step(self, batch):
        """One iteration on a per-replica batch {"image": [N, H, W, 3] float32 in [-1, 1],
        "mask": [N, H, W] int32 class ids (with num_classes > 0)}.

        Returns float32 scalars: g_low_level, g_content, g_layout (weighted), g_diversity (the
        regulariser, unweighted), g_total, diversity (mean L1 between samples' features),
        d_real_* and d_fake_* per branch (weighted), d_total.
        """
        image = tf.cast(batch["image"], tf.float32)  # [N, H, W, 3]
        mask = None
        if self.num_classes:
            mask = tf.one_hot(tf.cast(batch["mask"], tf.int32), self.num_classes)  # [N, H, W, K]
        losses = self._g_step(tf.shape(image)[0])
        losses.update(self._d_step(image, mask))
        self._update_ema()
        return {k: tf.cast(v, tf.float32) for k, v in losses.items()}

    def learning_rates(self):
        return {"lr_G": self.g_optimizer.learning_rate, "lr_D": self.d_optimizer.learning_rate}

    def checkpoint_objects(self):
        """What a training checkpoint holds (names are part of the checkpoint format)."""
        objects = {"generator_ema": variable_bundle(self.generator_ema), "step": self.step}
        if self.generator is not None:
            objects.update(
                generator=variable_bundle(self.generator),
                discriminator=variable_bundle(self.discriminator),
                g_optimizer=self.g_optimizer,
                d_optimizer=self.d_optimizer,
            )
        return objects

    def parameter_counts(self):
        """Trainable parameters of the generator and the discriminator (the EMA copy is not
        counted; an inference-only model counts its EMA generator)."""
        if self.generator is None:
            self.generator_ema.trainable = True
            try:
                return {"generator": count_parameters(self.generator_ema)}
            finally:
                self.generator_ema.trainable = False
        return {
            "generator": count_parameters(self.generator),
            "discriminator": count_parameters(self.discriminator),
        }
