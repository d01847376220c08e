"""Semantic Palette layout-synthesizer training: G, D, their optimizers, one iteration.

One iteration (as ProGAN / WGAN-GP, one critic step per generator step):

- D: E[D(fake)] - E[D(real)] + lambda_gp * (||grad D(x_hat)|| - 1)^2 + lambda_drift * D(real)^2
  on real layouts (Gaussian-blurred one-hot maps, average-pooled to the level's size and, while
  a level fades in, blended with their 2x coarser version as ProGAN does) and fakes from the
  real layouts' own palettes.
- G: -E[D(fake)] + lambda_entropy * pixel entropy + lambda_spread * spread (both averaged over
  every level's output, the intermediate ones included) + lambda_kl * KL(target || mean layout).

The level and the fade-in alpha are functions of the global step (`level_schedule`), so a
resumed run continues exactly where it stopped (training/loop.py). Every level is its own graph
(static sizes); the step picks one with tf.switch_case, which computes the losses and the
gradients (zero for the layers of the other levels) and the optimizers apply them outside it
(optimizers must not run inside a cond under MirroredStrategy). Adam is not reset when a level
starts (ProGAN resets it): the new level's layers start with zero moments. All randomness
(latents, interpolation weights) is stateless, keyed by (seed, step, replica, phase).
"""

import functools

import keras
import tensorflow as tf

from losses import palette as palette_losses
from models.palette import bands as bands_lib
from models.palette import networks
from training.checkpointing import variable_bundle
from training.optimizers import FusedAdam

_PHASE_D, _PHASE_G = 100, 200
_Z, _EPSILON, _BAND = 0, 1, 2


def level_schedule(step, fade_steps, stable_steps, max_level):
    """(level, alpha) trained at global step `step` (0-based), in Python.

    Level k occupies steps [k * P, (k + 1) * P) with P = fade_steps + stable_steps; a level
    k >= 1 fades in over its first fade_steps (alpha = t / fade_steps), level 0 has alpha 1.
    From max_level on the level stays max_level (alpha 1 after its fade-in).
    """
    period = fade_steps + stable_steps
    level = min(int(step) // period, int(max_level))
    if level == 0 or fade_steps == 0:
        return level, 1.0
    return level, min(1.0, (int(step) - level * period) / fade_steps)


def level_schedule_tf(step, fade_steps, stable_steps, max_level):
    """level_schedule in graph ops: (int32 level, float32 alpha) of an int64 step tensor."""
    step = tf.cast(step, tf.int64)
    period = fade_steps + stable_steps
    level = tf.minimum(step // period, max_level)
    if fade_steps == 0:
        return tf.cast(level, tf.int32), tf.constant(1.0)
    t = tf.cast(step - level * period, tf.float32)
    alpha = tf.where(level > 0, tf.minimum(1.0, t / float(fade_steps)), 1.0)
    return tf.cast(level, tf.int32), alpha


def resize_to_level(layout, factor):
    """[N, H, W, C] -> [N, H / factor, W / factor, C] by average pooling (factor a power of 2)."""
    if factor == 1:
        return layout
    return tf.nn.avg_pool2d(layout, factor, factor, "VALID")


def _gradients(tape, loss, variables):
    """Gradients of `loss` for every variable: zeros for the layers of other levels (each
    tf.switch_case branch must return the same structure)."""
    return tape.gradient(
        loss,
        [v.value for v in variables],  # the tf.Variables (zeros need a TF dtype)
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )


class PaletteLayoutGAN(keras.Model):
    """Progressive layout generator and critic trained together (WGAN-GP).

    Args:
        num_classes: C, the layouts' classes.
        z_dim: latent size.
        num_levels: levels of the networks; start_height x start_width doubles per level.
        start_height, start_width: the level-0 layout size (4 x 8 in the paper).
        channel_base, max_channels: level widths min(max_channels, channel_base / 2**k).
        feedback: feed each level's layout back into the next generator block.
        mbstd_group_size: the critic's minibatch-stddev group size.
        max_level: the last level trained (0-based).
        fade_steps, stable_steps: steps of each level's fade-in and stable phases.
        lambda_gp, lambda_drift, lambda_entropy, lambda_spread, lambda_kl: loss weights.
        lr, beta1, beta2: Adam settings (both networks).
        seed: seed of the latents and interpolation weights.
        for_training: False builds the generator only (inference).

    Example:
        >>> gan = PaletteLayoutGAN.from_run_config(PRESETS["tiny"], num_classes=19)
        >>> losses = gan.train_step({"layout": layouts, "proportions": palettes})
        >>> layout = gan.generate(z, palettes)  # at the level the step has reached
    """

    def __init__(
        self,
        *,
        num_classes,
        z_dim=512,
        num_levels=6,
        start_height=4,
        start_width=8,
        channel_base=4096,
        max_channels=512,
        feedback=True,
        mbstd_group_size=4,
        max_level=None,
        fade_steps=2000,
        stable_steps=2000,
        lambda_gp=10.0,
        lambda_drift=0.001,
        lambda_entropy=1.0,
        lambda_spread=1.0,
        lambda_kl=0.0,
        lr=1e-3,
        beta1=0.0,
        beta2=0.99,
        seed=0,
        for_training=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.z_dim = int(z_dim)
        self.num_levels = int(num_levels)
        self.start_height = int(start_height)
        self.start_width = int(start_width)
        self.channel_base = int(channel_base)
        self.max_channels = int(max_channels)
        self.feedback = bool(feedback)
        self.mbstd_group_size = int(mbstd_group_size)
        self.max_level = self.num_levels - 1 if max_level is None else int(max_level)
        self.fade_steps = int(fade_steps)
        self.stable_steps = int(stable_steps)
        self.lambda_gp = float(lambda_gp)
        self.lambda_drift = float(lambda_drift)
        self.lambda_entropy = float(lambda_entropy)
        self.lambda_spread = float(lambda_spread)
        self.lambda_kl = float(lambda_kl)
        self.lr = float(lr)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.seed = int(seed)
        self.for_training = bool(for_training)
        if not 0 <= self.max_level < self.num_levels:
            raise ValueError(f"max_level={max_level} must lie in [0, {self.num_levels})")

        # === Networks ===
        shared = self._network_arguments()
        self.generator = self._make_generator()
        # The global step of training, saved in checkpoints (resume continues from it).
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.discriminator = None
        if not self.for_training:
            return
        self.discriminator = networks.ProgressiveDiscriminator(
            mbstd_group_size=self.mbstd_group_size, name="discriminator", **shared
        )
        self.discriminator.build((None, *self.level_size(self.num_levels - 1), self.num_classes))

        # === Optimizers (Adam 1e-3, betas 0 / 0.99, as ProGAN) ===
        self.g_optimizer = FusedAdam(learning_rate=self.lr, beta_1=self.beta1, beta_2=self.beta2)
        self.d_optimizer = FusedAdam(learning_rate=self.lr, beta_1=self.beta1, beta_2=self.beta2)
        # Built here, i.e. inside strategy.scope() when the caller opened one.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def _network_arguments(self):
        return dict(
            num_classes=self.num_classes,
            num_levels=self.num_levels,
            start_height=self.start_height,
            start_width=self.start_width,
            channel_base=self.channel_base,
            max_channels=self.max_channels,
        )

    def _make_generator(self):
        generator = networks.ProgressiveLayoutGenerator(
            z_dim=self.z_dim, feedback=self.feedback, name="generator", **self._network_arguments()
        )
        generator.build((None, self.z_dim), (None, self.num_classes))
        return generator

    @classmethod
    def from_run_config(cls, config, **extras):
        """The model of a models.palette.config.PaletteConfig; `extras` give num_classes (and
        optionally for_training)."""
        return cls(**cls._run_config_arguments(config), **extras)

    @staticmethod
    def _run_config_arguments(config):
        return dict(
            z_dim=config.z_dim,
            num_levels=config.num_levels,
            start_height=config.start_size,
            start_width=config.level_size(0)[1],
            channel_base=config.channel_base,
            max_channels=config.max_channels,
            feedback=config.feedback,
            mbstd_group_size=config.mbstd_group_size,
            max_level=config.max_level,
            fade_steps=config.fade_steps,
            stable_steps=config.stable_steps,
            lambda_gp=config.lambda_gp,
            lambda_drift=config.lambda_drift,
            lambda_entropy=config.lambda_entropy,
            lambda_spread=config.lambda_spread,
            lambda_kl=config.lambda_kl,
            lr=config.lr,
            beta1=config.beta1,
            beta2=config.beta2,
            seed=config.seed,
        )

    def get_config(self):
        """The constructor arguments (one attribute each), keras-hub style."""
        names = (
            "num_classes z_dim num_levels start_height start_width channel_base max_channels "
            "feedback mbstd_group_size max_level fade_steps stable_steps lambda_gp lambda_drift "
            "lambda_entropy lambda_spread lambda_kl lr beta1 beta2 seed for_training"
        ).split()
        return {name: getattr(self, name) for name in names}

    # === Schedule ===

    def level_size(self, level):
        return networks.level_size(level, self.start_height, self.start_width)

    def schedule(self, step=None):
        """(level, alpha) at `step` (default the current step), Python values."""
        step = int(self.step.numpy()) if step is None else int(step)
        return level_schedule(step, self.fade_steps, self.stable_steps, self.max_level)

    # === Inference ===

    def call(self, z, proportions, training=False):
        return self.generate(z, proportions)

    def generate(self, z, proportions, level=None, alpha=None):
        """Soft layouts [N, H, W, C] at `level` (default: the level and alpha the step has
        reached)."""
        if level is None:
            level, scheduled_alpha = self.schedule()
            alpha = scheduled_alpha if alpha is None else alpha
        alpha = 1.0 if alpha is None else alpha
        layout, _, _ = self.generator(z, proportions, level=level, alpha=alpha, training=False)
        return layout

    # === Training ===

    def _key(self, phase, index):
        # Stateless seed of one random stream: (seed, step) folded with replica, phase, index.
        replica = tf.distribute.get_replica_context()
        replica_id = 0 if replica is None else replica.replica_id_in_sync_group
        key = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self.step, tf.int64)])
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(replica_id, tf.int64))
        return tf.random.experimental.stateless_fold_in(key, phase + index)

    def _latents(self, n, phase):
        return tf.random.stateless_normal(tf.stack([n, self.z_dim]), seed=self._key(phase, _Z))

    @staticmethod
    def _replica_scale():
        # Gradients are summed over replicas by the optimizer: divide by their number so the
        # update uses the mean over the global batch.
        return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync

    def real_at_level(self, real, level, alpha):
        """Real layouts [N, H_max, W_max, C] at `level` (Python int), faded in as ProGAN does:
        alpha * them + (1 - alpha) * their 2x coarser version, upsampled."""
        real = resize_to_level(real, 2 ** (self.max_level - level))  # [N, H_k, W_k, C]
        if level == 0:
            return real
        coarse = networks.upsample2x(networks.downsample2x(real))
        return alpha * real + (1.0 - alpha) * coarse

    def _generate(self, level, real, proportions, alpha, phase):
        """Fakes at `level` for a per-replica batch: (layout [N, H_k, W_k, C], [every level's
        layout], [every level's assisted mask], [N, C] target palettes)."""
        n = tf.shape(proportions)[0]
        layout, layouts, masks = self.generator(
            self._latents(n, phase), proportions, level=level, alpha=alpha, training=True
        )
        return layout, layouts, masks, proportions

    def _d_level(self, level, real, proportions, alpha):
        """The critic's losses and gradients at `level` (one tf.switch_case branch)."""
        n = tf.shape(real)[0]
        fake = tf.stop_gradient(self._generate(level, real, proportions, alpha, _PHASE_D)[0])
        real = self.real_at_level(real, level, alpha)
        epsilon = tf.random.stateless_uniform(
            tf.reshape(n, [1]), seed=self._key(_PHASE_D, _EPSILON)
        )  # [N]
        variables = self.discriminator.trainable_variables
        critic = functools.partial(self.discriminator, level=level, alpha=alpha, training=True)
        with tf.GradientTape() as tape:
            real_scores, fake_scores = critic(real), critic(fake)  # [N, 1] each
            x_hat = palette_losses.interpolate(real, fake, epsilon)  # [N, H_k, W_k, C]
            with tf.GradientTape() as inner:
                inner.watch(x_hat)
                hat_score_sum = tf.reduce_sum(critic(x_hat))
            penalty = palette_losses.gradient_penalty(inner.gradient(hat_score_sum, x_hat))
            losses = {
                "D_wgan": palette_losses.wgan_d_loss(real_scores, fake_scores),
                "D_gp": self.lambda_gp * penalty,
                "D_drift": self.lambda_drift * palette_losses.drift_penalty(real_scores),
            }
            total = tf.add_n(list(losses.values()))
            scaled = total * self._replica_scale()
        grads = _gradients(tape, scaled, variables)
        losses["D_total"] = total
        return losses, grads

    def generator_losses(self, layout, layouts, masks, target, level, alpha):
        """The generator's weighted loss terms for its output `layout` at `level`: WGAN,
        pixel entropy and spread (averaged over every level's output), optional KL."""
        scores = self.discriminator(layout, level=level, alpha=alpha, training=True)
        count = float(len(layouts))
        losses = {
            "G_wgan": palette_losses.wgan_g_loss(scores),
            "G_entropy": self.lambda_entropy
            * tf.add_n([palette_losses.pixel_entropy(x) for x in layouts])
            / count,
            "G_spread": self.lambda_spread
            * tf.add_n([palette_losses.spread_loss(m) for m in masks])
            / count,
        }
        if self.lambda_kl > 0:
            losses["G_kl"] = (
                self.lambda_kl
                * tf.add_n([palette_losses.proportion_kl(x, target) for x in layouts])
                / count
            )
        return losses

    def _g_level(self, level, real, proportions, alpha):
        """The generator's losses and gradients at `level` (one tf.switch_case branch)."""
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            layout, layouts, masks, target = self._generate(
                level, real, proportions, alpha, _PHASE_G
            )
            losses = self.generator_losses(layout, layouts, masks, target, level, alpha)
            total = tf.add_n(list(losses.values()))
            scaled = total * self._replica_scale()
        grads = _gradients(tape, scaled, variables)
        losses["G_total"] = total
        return losses, grads

    def train_step(self, batch):
        """One iteration on a per-replica batch {"layout": [N, H, W, C] float32 soft layouts at
        max_level's size, "proportions": [N, C] float32 their palettes}.

        Returns the per-replica loss terms (weighted), plus "level" and "alpha".
        """
        real = tf.cast(batch["layout"], tf.float32)
        proportions = tf.cast(batch["proportions"], tf.float32)
        level, alpha = level_schedule_tf(
            self.step, self.fade_steps, self.stable_steps, self.max_level
        )
        levels = range(self.max_level + 1)
        d_losses, d_grads = tf.switch_case(
            level,
            [functools.partial(self._d_level, k, real, proportions, alpha) for k in levels],
        )
        self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_variables))
        # The G step reads the updated critic (tf.function orders the reads after the writes).
        g_losses, g_grads = tf.switch_case(
            level,
            [functools.partial(self._g_level, k, real, proportions, alpha) for k in levels],
        )
        self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_variables))
        losses = {**d_losses, **g_losses}
        losses["level"] = tf.cast(level, tf.float32)
        losses["alpha"] = alpha
        return {k: tf.cast(v, tf.float32) for k, v in losses.items()}

    def learning_rates(self):
        """Current learning rates (for TensorBoard)."""
        return {"lr_G": self.g_optimizer.learning_rate, "lr_D": self.d_optimizer.learning_rate}

    def checkpoint_objects(self):
        """What a training checkpoint holds (names are part of the checkpoint format)."""
        objects = {"generator": variable_bundle(self.generator), "step": self.step}
        if self.discriminator is not None:
            objects["discriminator"] = variable_bundle(self.discriminator)
            objects["g_optimizer"] = self.g_optimizer
            objects["d_optimizer"] = self.d_optimizer
        return objects

    def parameter_counts(self):
        """Trainable parameter count per network."""
        nets = {"generator": self.generator, "discriminator": self.discriminator}
        return {
            name: int(sum(int(tf.size(v)) for v in net.trainable_variables))
            for name, net in nets.items()
            if net is not None
        }


class PalettePartialGAN(PaletteLayoutGAN):
    """The partial-editing layout synthesizer (stage=partial): PartialLayoutGenerator and the
    progressive critic, trained as the layout stage (WGAN-GP, level by level with fade-in).

    Each training layout gets a random band of columns (models.palette.bands.draw_bands, keyed
    by seed, step, replica and phase, so a resume is exact) of band_min_width .. band_max_width
    of the trained width. The generator sees the real layout (blurred, at max_level's size)
    with the band masked plus the keep channel, and delta = the real layout's class mass in the
    band (target palette = the real layout's, minus the kept part's). Its output is merged with
    the input outside the band at every level; the critic scores the merged layouts against
    real ones, and the entropy / spread / KL terms are those of the layout stage.

    Args:
        spade_hidden: hidden channels of each SPADE layer of the generator.
        band_min_width, band_max_width: band widths as fractions of the layout width.
        **kwargs: PaletteLayoutGAN's arguments.

    Example:
        >>> gan = PalettePartialGAN.from_run_config(config, num_classes=19)
        >>> losses = gan.train_step({"layout": layouts, "proportions": palettes})
        >>> edited = gan.edit(z, layouts, keep, delta)  # at the level the step has reached
    """

    def __init__(self, *, spade_hidden=128, band_min_width=0.25, band_max_width=0.5, **kwargs):
        # Set before the base constructor, which builds the generator from them.
        self.spade_hidden = int(spade_hidden)
        self.band_min_width = float(band_min_width)
        self.band_max_width = float(band_max_width)
        super().__init__(**kwargs)

    def _make_generator(self):
        generator = networks.PartialLayoutGenerator(
            z_dim=self.z_dim,
            feedback=self.feedback,
            spade_hidden=self.spade_hidden,
            name="generator",
            **self._network_arguments(),
        )
        size = self.level_size(self.num_levels - 1)
        generator.build(
            (None, self.z_dim),
            (None, *size, self.num_classes),
            (None, *size, 1),
            (None, self.num_classes),
        )
        return generator

    @staticmethod
    def _run_config_arguments(config):
        return dict(
            PaletteLayoutGAN._run_config_arguments(config),
            spade_hidden=config.spade_hidden,
            band_min_width=config.band_min_width,
            band_max_width=config.band_max_width,
        )

    def get_config(self):
        return dict(
            super().get_config(),
            spade_hidden=self.spade_hidden,
            band_min_width=self.band_min_width,
            band_max_width=self.band_max_width,
        )

    def band_widths(self):
        """(min, max) band width in columns of the trained (max_level) layouts."""
        width = self.level_size(self.max_level)[1]
        low = max(1, min(width, int(round(self.band_min_width * width))))
        high = max(low, min(width, int(round(self.band_max_width * width))))
        return low, high

    def draw_keep(self, n, phase):
        """[N, H, W, 1] keep masks of random bands of the trained size, keyed by the step."""
        height, width = self.level_size(self.max_level)
        bands = bands_lib.draw_bands(self._key(phase, _BAND), n, width, *self.band_widths())
        return bands_lib.keep_masks(bands, height, width)

    def _generate(self, level, real, proportions, alpha, phase):
        n = tf.shape(real)[0]
        keep = self.draw_keep(n, phase)  # [N, H, W, 1]
        delta = bands_lib.band_mass(real, keep)  # [N, C]: what the band held
        layout, layouts, masks = self.generator(
            self._latents(n, phase), real, keep, delta, level=level, alpha=alpha, training=True
        )
        target = tf.reduce_mean(real, axis=[1, 2])  # [N, C] the real layout's palette
        return layout, layouts, masks, target

    # === Inference ===

    def call(self, z, layout, keep, delta, training=False):
        return self.edit(z, layout, keep, delta)

    def generate(self, z, proportions, level=None, alpha=None):
        raise TypeError("PalettePartialGAN edits layouts: use edit(z, layout, keep, delta)")

    def edit(self, z, layout, keep, delta, level=None, alpha=None):
        """Edited soft layouts [N, H_level, W_level, C] (the input kept outside the band) at
        `level` (default: the level and alpha the step has reached).

        Args:
            z: [N, z_dim]; layout: [N, H, W, C] at max_level's size; keep: [N, H, W, 1];
            delta: [N, C] the band's class mass (models.palette.bands.network_delta).
        """
        if level is None:
            level, scheduled_alpha = self.schedule()
            alpha = scheduled_alpha if alpha is None else alpha
        alpha = 1.0 if alpha is None else alpha
        output, _, _ = self.generator(
            z, layout, keep, delta, level=level, alpha=alpha, training=False
        )
        return output
