"""StyleGAN2 training logic: G, D, the EMA of G, their optimizers and one training iteration.

The training loop (training/loop.py) calls `train_step` inside `strategy.run` (one trace) and
increments `step` afterwards. One iteration = one D step then one G step, as in StyleGAN2:

- D: logistic loss on fresh fakes and the reals; every `r1_interval` steps (step % r1_interval
  == 0) the same gradient also carries r1_gamma / 2 * r1_interval * R1 (lazy regularisation).
- G: non-saturating loss; every `pl_interval` steps the gradient also carries
  pl_weight * pl_interval * path-length penalty, computed on batch // pl_batch_shrink samples.
- Both Adams are adjusted for the lazy intervals: c = k / (k + 1), lr * c, beta ** c.
- After the G step the EMA generator moves towards G: ema = g + beta (ema - g), with
  beta = 0.5 ** (batch_size / (1000 * ema_half_life_kimg)), i.e. a half-life counted in images so
  it does not depend on the batch size (StyleGAN2's 10 kimg gives 0.5 ** (32 / 10000) at batch 32).
  With `ema_rampup` > 0 the half-life is at most ema_rampup x the images seen before the step
  (StyleGAN2-ADA), so the EMA of a short run is not mostly its random initialisation.

Only the gradient computation sits inside `tf.cond`; optimizers are applied and variables
assigned outside it (optimizers must not run inside a cond under MirroredStrategy). All
randomness (latents, style-mixing crossovers, noise images) is stateless, keyed by
(seed, step, replica, phase), so a resumed run continues exactly as an uninterrupted one.
"""

import keras
import tensorflow as tf

from losses import stylegan2 as sg2_losses
from models.stylegan2.networks import StyleGAN2Discriminator, StyleGAN2Generator, count_parameters
from training.checkpointing import variable_bundle
from training.optimizers import FusedAdam

# Phases keying the stateless random streams of one step (any distinct integers).
_PHASE_D, _PHASE_G, _PHASE_PL = 100, 200, 300
_Z, _MIX_Z, _MIX_DRAW, _CROSSOVER, _NOISE, _PL_Y = range(6)


def ema_decay(batch_size, half_life_kimg):
    """EMA decay per step for a half-life of `half_life_kimg` thousand images (0 = no EMA)."""
    if half_life_kimg <= 0:
        return 0.0
    return 0.5 ** (float(batch_size) / (1000.0 * float(half_life_kimg)))


def lazy_ratio(interval, enabled=True):
    """c = k / (k + 1) for regularisation every k steps (1 when the regulariser is off)."""
    return interval / (interval + 1.0) if enabled and interval > 0 else 1.0


class StyleGAN2GAN(keras.Model):
    """StyleGAN2 generator, residual discriminator and generator EMA trained together.

    Args:
        resolution: generated image size, a power of 2.
        z_dim: size of the latent z.
        w_dim: size of the intermediate latent w.
        mapping_layers: dense layers of the mapping network.
        channel_multiplier: width of the 64 px and finer blocks (2 in Synthesis in Style).
        width: scale on every width (1.0 = the reference; < 1 for tiny test networks).
        batch_size: global batch size (the EMA half-life is counted in images).
        lr: Adam learning rate (before the lazy-regularisation adjustment).
        beta1, beta2: Adam betas (before the adjustment).
        lr_schedule: "constant" or "cosine" (over total_steps).
        total_steps: length of the cosine schedule.
        r1_gamma: R1 penalty weight on reals (0: off).
        r1_interval: lazy R1 every this many D steps.
        pl_weight: path-length regularisation weight (0: off).
        pl_interval: lazy path-length regularisation every this many G steps (0: off).
        pl_batch_shrink: the penalty uses batch // pl_batch_shrink samples.
        pl_decay: decay of the running mean of path lengths.
        style_mixing_prob: probability of style mixing.
        ema_half_life_kimg: half-life of the generator EMA in thousands of images (0: none).
        ema_rampup: > 0 caps the half-life at ema_rampup x the images seen before the step
            (StyleGAN2-ADA's ramp-up); 0 keeps it fixed (rosinality, Synthesis in Style).
        mixed_precision: must be "none" (second-order gradients in float32).
        seed: seed of the stateless latents and noise.
        for_training: False builds the EMA generator only (synthesis from a checkpoint).

    Example:
        >>> gan = StyleGAN2GAN(resolution=32, width=1 / 32, channel_multiplier=1, batch_size=4)
        >>> losses = gan.train_step({"image": images})  # images [4, 32, 32, 3] in [-1, 1]
        >>> images = gan.sample(tf.random.normal((8, 512)), truncation_psi=0.7)
        >>> gan = StyleGAN2GAN.from_run_config(PRESETS["tiny"])  # models.stylegan2.config
    """

    def __init__(
        self,
        *,
        resolution,
        z_dim=512,
        w_dim=512,
        mapping_layers=8,
        channel_multiplier=2,
        width=1.0,
        batch_size=32,
        lr=0.002,
        beta1=0.0,
        beta2=0.99,
        lr_schedule="constant",
        total_steps=0,
        r1_gamma=10.0,
        r1_interval=16,
        pl_weight=2.0,
        pl_interval=4,
        pl_batch_shrink=2,
        pl_decay=0.01,
        style_mixing_prob=0.9,
        ema_half_life_kimg=10.0,
        ema_rampup=0.0,
        mixed_precision="none",
        seed=0,
        for_training=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        precision = mixed_precision or "none"
        if precision != "none":
            raise ValueError(
                f"--mixed_precision={precision}: StyleGAN2 trains in float32 only (the R1 and "
                "path-length penalties are second-order gradients); use --mixed_precision=none"
            )
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"--lr_schedule={lr_schedule!r} must be 'constant' or 'cosine'")
        # === Config ===
        self.resolution = int(resolution)
        self.z_dim = int(z_dim)
        self.w_dim = int(w_dim)
        self.mapping_layers = int(mapping_layers)
        self.channel_multiplier = int(channel_multiplier)
        self.width = float(width)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.lr_schedule = lr_schedule
        self.total_steps = int(total_steps)
        self.r1_gamma = float(r1_gamma)
        self.r1_interval = int(r1_interval)
        self.pl_weight = float(pl_weight)
        self.pl_interval = int(pl_interval)
        self.pl_batch_shrink = int(pl_batch_shrink)
        self.pl_decay = float(pl_decay)
        self.style_mixing_prob = float(style_mixing_prob)
        self.ema_half_life_kimg = float(ema_half_life_kimg)
        self.ema_rampup = float(ema_rampup)
        self.mixed_precision = precision
        self.seed = int(seed)
        self.for_training = bool(for_training)

        # === Networks ===
        generator_args = dict(
            resolution=self.resolution,
            z_dim=self.z_dim,
            w_dim=self.w_dim,
            mapping_layers=self.mapping_layers,
            channel_multiplier=self.channel_multiplier,
            width=self.width,
        )
        self.generator_ema = StyleGAN2Generator(**generator_args, name="generator_ema")
        self.generator_ema.trainable = False
        # The global step of training, saved in checkpoints (resume continues from it).
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.generator = self.discriminator = None
        if not for_training:
            return
        self.generator = StyleGAN2Generator(**generator_args, name="generator")
        self.discriminator = StyleGAN2Discriminator(
            resolution=self.resolution,
            channel_multiplier=self.channel_multiplier,
            width=self.width,
            name="discriminator",
        )
        for ema_variable, variable in zip(self.generator_ema.variables, self.generator.variables):
            ema_variable.assign(variable)
        # Running mean of the path lengths; replicas' updates are averaged on assignment.
        self.pl_mean = tf.Variable(
            0.0, trainable=False, name="pl_mean", aggregation=tf.VariableAggregation.MEAN
        )

        # === Regularisation and EMA settings ===
        self.r1_enabled = self.r1_gamma > 0 and self.r1_interval > 0
        self.pl_enabled = self.pl_weight > 0 and self.pl_interval > 0
        self.ema_beta = ema_decay(self.batch_size, self.ema_half_life_kimg)

        # === Optimizers (Adam, adjusted for lazy regularisation) ===
        self.d_optimizer = self._make_optimizer(lazy_ratio(self.r1_interval, self.r1_enabled))
        self.g_optimizer = self._make_optimizer(lazy_ratio(self.pl_interval, self.pl_enabled))
        # Built here, i.e. inside strategy.scope() when the caller opened one.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @classmethod
    def from_run_config(cls, config, steps_per_epoch=1, for_training=True):
        """The GAN of a resolved StyleGAN2Config (the cosine schedule spans max_steps, or
        total_epochs * steps_per_epoch when max_steps is 0)."""
        return cls(
            resolution=config.resolution,
            z_dim=config.z_dim,
            w_dim=config.w_dim,
            mapping_layers=config.mapping_layers,
            channel_multiplier=config.channel_multiplier,
            width=config.width,
            batch_size=config.batch_size,
            lr=config.lr,
            beta1=config.beta1,
            beta2=config.beta2,
            lr_schedule=config.lr_schedule,
            total_steps=config.max_steps or config.total_epochs * steps_per_epoch,
            r1_gamma=config.r1_gamma,
            r1_interval=config.r1_interval,
            pl_weight=config.pl_weight,
            pl_interval=config.pl_interval,
            pl_batch_shrink=config.pl_batch_shrink,
            pl_decay=config.pl_decay,
            style_mixing_prob=config.style_mixing_prob,
            ema_half_life_kimg=config.ema_half_life_kimg,
            ema_rampup=config.ema_rampup,
            mixed_precision=config.mixed_precision,
            seed=config.seed,
            for_training=for_training,
        )

    def get_config(self):
        """The constructor arguments (one attribute each), keras-hub style."""
        names = (
            "resolution z_dim w_dim mapping_layers channel_multiplier width batch_size lr beta1 "
            "beta2 lr_schedule total_steps r1_gamma r1_interval pl_weight pl_interval "
            "pl_batch_shrink pl_decay style_mixing_prob ema_half_life_kimg ema_rampup "
            "mixed_precision seed for_training"
        ).split()
        return {name: getattr(self, name) for name in names}

    def _make_optimizer(self, c):
        lr = self.lr * c
        if self.lr_schedule == "cosine":
            if self.total_steps <= 0:
                raise ValueError("--lr_schedule=cosine needs --max_steps > 0")
            lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=self.total_steps)
        return FusedAdam(  # keras Adam, fused update
            learning_rate=lr,
            beta_1=self.beta1**c,
            beta_2=self.beta2**c,
            epsilon=1e-8,  # the reference's (PyTorch's) Adam epsilon
        )

    # === Inference ===

    def call(self, z, truncation_psi=1.0, noise_mode="const"):
        return self.sample(z, truncation_psi=truncation_psi, noise_mode=noise_mode)

    def sample(self, z, truncation_psi=1.0, noise_mode="const", w_avg=None):
        """z [N, z_dim] -> images [N, R, R, 3] float32 (about [-1, 1]) from the EMA generator.

        truncation_psi < 1 pulls w towards `w_avg` (default: the EMA generator's mean of 4096 w).
        noise_mode "const" (default) makes the samples a pure function of z.
        """
        if w_avg is None and truncation_psi != 1.0:
            w_avg = self.generator_ema.mean_w()
        return self.generator_ema(
            z, truncation_psi=truncation_psi, w_avg=w_avg, noise_mode=noise_mode
        )

    # === Training ===

    def _key(self, phase, index):
        # Stateless seed of one random stream: (seed, step) folded with replica, phase, index.
        replica = tf.distribute.get_replica_context()
        replica_id = 0 if replica is None else replica.replica_id_in_sync_group
        key = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self.step, tf.int64)])
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(replica_id, tf.int64))
        return tf.random.experimental.stateless_fold_in(key, phase + index)

    def _sample_ws(self, n, phase):
        """ws [n, num_ws, w_dim] of fresh latents, style-mixed with probability p."""
        generator = self.generator
        z_dim, num_ws = self.z_dim, generator.num_ws
        z = tf.random.stateless_normal(tf.stack([n, z_dim]), seed=self._key(phase, _Z))
        w = generator.mapping(z)  # [n, w_dim]
        mixing_prob = self.style_mixing_prob
        if mixing_prob <= 0:
            return generator.broadcast_ws(w)  # [n, num_ws, w_dim]
        mixing_z = tf.random.stateless_normal(tf.stack([n, z_dim]), seed=self._key(phase, _MIX_Z))
        # One crossover per batch, in [1, num_ws - 1]; num_ws (no mixing) with probability 1 - p.
        crossover = tf.random.stateless_uniform(
            [], seed=self._key(phase, _CROSSOVER), minval=1, maxval=num_ws, dtype=tf.int32
        )
        draw = tf.random.stateless_uniform([], seed=self._key(phase, _MIX_DRAW))
        crossover = tf.where(draw < mixing_prob, crossover, num_ws)
        return generator.mix_ws(w, generator.mapping(mixing_z), crossover)

    def _synthesize(self, ws, phase):
        seed = self._key(phase, _NOISE)
        return self.generator.synthesis(ws, noise_mode="random", noise_seed=seed)

    @staticmethod
    def _replica_scale():
        # Gradients are summed over replicas by the optimizer: dividing by their number makes the
        # update use the mean over the global batch.
        return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync

    @staticmethod
    def _dense_grads(grads, variables):
        return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]

    def _is_reg_step(self, interval):
        return tf.equal(tf.math.floormod(self.step, tf.cast(interval, tf.int64)), 0)

    def _d_step(self, real):
        discriminator = self.discriminator
        variables = discriminator.trainable_variables
        n = tf.shape(real)[0]
        fake = tf.stop_gradient(self._synthesize(self._sample_ws(n, _PHASE_D), _PHASE_D))
        r1_weight = 0.5 * self.r1_gamma * self.r1_interval

        def gradients(with_r1):
            with tf.GradientTape() as tape:
                fake_logits = discriminator(fake)  # [N, 1]
                if with_r1:
                    # A tensor of this branch's graph: watching the captured outer tensor
                    # would give no gradient inside tf.cond.
                    real_in = tf.identity(real)
                    with tf.GradientTape() as r1_tape:
                        r1_tape.watch(real_in)
                        real_logits = discriminator(real_in)  # [N, 1]
                        real_sum = tf.reduce_sum(real_logits)
                    real_grads = r1_tape.gradient(real_sum, real_in)  # [N, R, R, 3]
                    r1 = sg2_losses.r1_penalty(real_grads)
                else:
                    real_logits = discriminator(real)
                    r1 = tf.zeros([])
                d_loss = sg2_losses.d_logistic_loss(real_logits, fake_logits)
                total = d_loss + r1_weight * r1 if with_r1 else d_loss
                scaled = total * self._replica_scale()
            grads = self._dense_grads(tape.gradient(scaled, variables), variables)
            scores = (tf.reduce_mean(real_logits), tf.reduce_mean(fake_logits))
            return grads, d_loss, r1, scores

        if self.r1_enabled:
            grads, d_loss, r1, scores = tf.cond(
                self._is_reg_step(self.r1_interval),
                lambda: gradients(True),
                lambda: gradients(False),
            )
        else:
            grads, d_loss, r1, scores = gradients(False)
        self.d_optimizer.apply_gradients(zip(grads, variables))
        return {"d_loss": d_loss, "r1": r1, "real_score": scores[0], "fake_score": scores[1]}

    def _g_step(self, n):
        generator = self.generator
        variables = generator.trainable_variables
        pl_weight = self.pl_weight * self.pl_interval
        pl_n = tf.maximum(1, n // self.pl_batch_shrink)

        def gradients(with_pl):
            with tf.GradientTape() as tape:
                fake = self._synthesize(self._sample_ws(n, _PHASE_G), _PHASE_G)
                g_loss = sg2_losses.g_nonsaturating_loss(self.discriminator(fake))
                total = g_loss
                if with_pl:
                    ws = self._sample_ws(pl_n, _PHASE_PL)  # [n', num_ws, w_dim]
                    with tf.GradientTape() as pl_tape:
                        pl_tape.watch(ws)
                        images = self._synthesize(ws, _PHASE_PL)  # [n', R, R, 3]
                        y = tf.random.stateless_normal(
                            tf.shape(images), seed=self._key(_PHASE_PL, _PL_Y)
                        ) * sg2_losses.path_length_noise_scale(images)
                        projected = tf.reduce_sum(images * y)
                    lengths = sg2_losses.path_lengths(pl_tape.gradient(projected, ws))  # [n']
                    pl, pl_mean = sg2_losses.path_length_penalty(
                        lengths, self.pl_mean, self.pl_decay
                    )
                    total = total + pl_weight * pl
                else:
                    pl, pl_mean = tf.zeros([]), tf.identity(self.pl_mean)
                scaled = total * self._replica_scale()
            grads = self._dense_grads(tape.gradient(scaled, variables), variables)
            return grads, g_loss, pl, pl_mean

        if self.pl_enabled:
            grads, g_loss, pl, pl_mean = tf.cond(
                self._is_reg_step(self.pl_interval),
                lambda: gradients(True),
                lambda: gradients(False),
            )
        else:
            grads, g_loss, pl, pl_mean = gradients(False)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        if self.pl_enabled:
            self.pl_mean.assign(pl_mean)
        self._update_ema()
        return {"g_loss": g_loss, "pl": pl, "pl_mean": pl_mean}

    def current_ema_beta(self):
        """This step's EMA decay: ema_beta, or with the ramp-up a half-life of
        min(ema_half_life_kimg * 1000, ema_rampup * images seen before this step) images."""
        if self.ema_rampup <= 0 or self.ema_half_life_kimg <= 0:
            return tf.constant(ema_decay(self.batch_size, self.ema_half_life_kimg), tf.float32)
        seen = tf.cast(self.step, tf.float32) * float(self.batch_size)
        half_life = tf.minimum(1000.0 * self.ema_half_life_kimg, seen * self.ema_rampup)
        return 0.5 ** (float(self.batch_size) / tf.maximum(half_life, 1e-8))

    def _update_ema(self):
        """ema = g + beta (ema - g) for every generator variable (noise buffers excepted)."""
        beta = self.current_ema_beta()
        pairs = [
            (ema_variable, variable)
            for ema_variable, variable in zip(self.generator_ema.weights, self.generator.weights)
            if variable.trainable
        ]

        def update(strategy=None):
            # Cross-replica context: reads the (identical) mirrored G weights once and writes
            # every replica's copy of the EMA weights.
            for ema_variable, variable in pairs:
                ema_variable.assign(variable + beta * (ema_variable - variable))

        replica = tf.distribute.get_replica_context()
        if replica is None:
            update()
        else:
            replica.merge_call(update)

    def train_step(self, batch):
        """One iteration on a per-replica batch {"image": [N, R, R, 3] float32 in [-1, 1]}.

        Returns float32 scalars: d_loss, g_loss (unweighted GAN losses), r1 and pl (the raw
        penalties; 0 on steps without lazy regularisation), pl_mean, real_score, fake_score.
        """
        real = tf.cast(batch["image"], tf.float32)  # [N, R, R, 3]
        losses = self._d_step(real)
        losses.update(self._g_step(tf.shape(real)[0]))
        return {k: tf.cast(v, tf.float32) for k, v in losses.items()}

    def learning_rates(self):
        """Current learning rates (for TensorBoard)."""
        return {
            "lr_G": self.g_optimizer.learning_rate,
            "lr_D": self.d_optimizer.learning_rate,
        }

    def checkpoint_objects(self):
        """What a training checkpoint holds (names are part of the checkpoint format)."""
        objects = {"generator_ema": variable_bundle(self.generator_ema), "step": self.step}
        if self.generator is not None:
            objects.update(
                generator=variable_bundle(self.generator),
                discriminator=variable_bundle(self.discriminator),
                g_optimizer=self.g_optimizer,
                d_optimizer=self.d_optimizer,
                pl_mean=self.pl_mean,
            )
        return objects

    def parameter_counts(self):
        """Trainable parameter counts: generator (= mapping + synthesis) and discriminator.

        The EMA copy is not counted; without training networks the EMA generator's
        would-be-trainable weights are counted instead.
        """
        if self.generator is None:
            generator = self.generator_ema
            generator.trainable = True
            try:
                counts = self._generator_counts(generator)
            finally:
                generator.trainable = False
            return counts
        counts = self._generator_counts(self.generator)
        counts["discriminator"] = count_parameters(self.discriminator)
        return counts

    @staticmethod
    def _generator_counts(generator):
        return {
            "generator": count_parameters(generator),
            "mapping": count_parameters(generator.mapping),
            "synthesis": count_parameters(generator.synthesis),
        }
