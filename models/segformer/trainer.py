"""SegFormer training logic: the segmenter, its two AdamW optimizers and one train step.

The recipe of the SegFormer paper: AdamW (lr 6e-5, weight decay 0.01, none on normalisation
parameters), the decode head at lr x10, linear warm-up then poly decay; cross-entropy with ignore
index 255 (optionally class-weighted, optionally plus the power-Jaccard loss of the
FaceSynthetics system), logits upsampled to the label size in the loss. The FaceSynthetics
system's one-cycle cosine schedule (PyTorch's OneCycleLR) is `OneCycleCosine`.

Mixed float16 scales the loss dynamically (keras.optimizers.LossScaleOptimizer around each of
the two optimizers). The two scales are kept equal: a step whose gradients hold an inf or NaN
anywhere is skipped by both optimizers (both halve their scale), and a finite step is applied
by both (both count it towards doubling), so the loss is scaled by the encoder's scale and
either optimizer unscales it exactly.
"""

import math

import keras
import tensorflow as tf

from losses import segmentation as seg_losses
from models.segformer import networks as segformer
from training.checkpointing import variable_bundle


@keras.saving.register_keras_serializable(package="semsynth")
class PolyWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from `initial * warmup_ratio` to `initial`, then poly decay to 0.

    Args:
        initial: peak learning rate.
        total_steps: steps of the whole schedule (the rate reaches 0 there).
        warmup_steps: steps of the linear warm-up.
        power: exponent of the poly decay (1.0 = linear).
        warmup_ratio: starting fraction of the warm-up.
    """

    def __init__(self, initial, total_steps, warmup_steps, power=1.0, warmup_ratio=1e-6):
        self.initial = float(initial)
        self.total_steps = int(max(1, total_steps))
        self.warmup_steps = int(max(0, warmup_steps))
        self.power = float(power)
        self.warmup_ratio = float(warmup_ratio)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        decay = (1.0 - tf.minimum(step, self.total_steps) / self.total_steps) ** self.power
        rate = self.initial * decay
        if self.warmup_steps:
            ramp = self.warmup_ratio + (1.0 - self.warmup_ratio) * tf.minimum(
                step / self.warmup_steps, 1.0
            )
            rate = rate * ramp
        return rate

    def get_config(self):
        return {
            "initial": self.initial,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "power": self.power,
            "warmup_ratio": self.warmup_ratio,
        }


@keras.saving.register_keras_serializable(package="semsynth")
class OneCycleCosine(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle schedule with cosine annealing (PyTorch's OneCycleLR, two phases).

    With T = total_steps, r0 = peak / div_factor and r_min = r0 / final_div_factor, the rate of
    optimizer step s (0-based) is

        s <= e1:  cos_anneal(r0, peak, s / e1)                    (rising)
        s >  e1:  cos_anneal(peak, r_min, (s - e1) / (T - 1 - e1))  (falling)

    where e1 = pct_start * T - 1 and cos_anneal(a, b, t) = b + (a - b) / 2 * (1 + cos(pi t));
    steps past T - 1 keep r_min. When e1 <= 0 there is no rising phase (the rate starts at
    the peak).

    Args:
        peak: the largest rate (OneCycleLR's max_lr).
        total_steps: steps of the whole cycle.
        pct_start: fraction of the steps spent rising (the FaceSynthetics system: 0.125).
        div_factor: peak / starting rate.
        final_div_factor: starting rate / final rate.

    Example:
        >>> schedule = OneCycleCosine(5e-5, total_steps=12500, pct_start=0.125)
        >>> float(schedule(0)), float(schedule(1562))  # 2e-6, ~5e-5
    """

    def __init__(self, peak, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
        self.peak = float(peak)
        self.total_steps = int(max(1, total_steps))
        self.pct_start = float(pct_start)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        start = self.peak / self.div_factor
        final = start / self.final_div_factor
        rise_end = self.pct_start * self.total_steps - 1.0  # e1 (a float, as in PyTorch)
        fall_length = max(self.total_steps - 1.0 - max(rise_end, 0.0), 1e-12)

        def cos_anneal(a, b, t):
            return b + (a - b) / 2.0 * (1.0 + tf.cos(math.pi * tf.clip_by_value(t, 0.0, 1.0)))

        falling = cos_anneal(self.peak, final, (step - max(rise_end, 0.0)) / fall_length)
        if rise_end <= 0:
            return falling
        rising = cos_anneal(start, self.peak, step / rise_end)
        return tf.where(step <= rise_end, rising, falling)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
        }


LR_SCHEDULES = ("poly", "one_cycle")


class SegFormerTrainer(keras.Model):
    """A SegFormer with its optimizers and train step.

    Args:
        num_classes: classes predicted (label 255 is ignored).
        variant: MiT encoder, "tiny" or "b0" .. "b5".
        architecture: "original" (exact GELU, LayerNorm eps 1e-5) or "keras_hub" (its choices,
            for keras-hub weights); see models.segformer.networks.ARCHITECTURES.
        crop_size: training crop size (px); the weights are created at this size.
        lr: encoder learning rate (peak of the schedule).
        head_lr_mult: the decode head's learning rate is lr * head_lr_mult.
        weight_decay: AdamW weight decay (none on normalisation parameters).
        beta1, beta2: AdamW betas.
        lr_schedule: "poly" (linear warm-up over warmup_steps, then poly decay with
            lr_power: `PolyWithWarmup`) or "one_cycle" (`OneCycleCosine` with pct_start).
        warmup_steps: linear warm-up steps (poly).
        lr_power: power of the poly decay.
        pct_start: fraction of the steps the one-cycle schedule spends rising.
        total_steps: length of the lr schedule in steps.
        ce_weight: weight of the cross-entropy loss (0: off).
        jaccard_weight: weight of the power-Jaccard loss (0: off).
        clip_grad_norm: global gradient-norm clipping (0: off).
        clip_grad_value: element-wise gradient clipping to [-v, v] (0: off), as PyTorch's
            clip_grad_value_ (the FaceSynthetics system's "clip 1.0").
        class_weights: optional [num_classes] cross-entropy weights.
        mixed_precision: the Keras policy in use ("mixed_float16" adds dynamic loss scaling).
        for_training: False builds the network only (inference).

    Example:
        >>> trainer = SegFormerTrainer(num_classes=19, variant="b0", crop_size=512)
        >>> losses = trainer.train_step({"image": images, "label": labels})
        >>> trainer = SegFormerTrainer.from_run_config(config, num_classes=19, total_steps=1000)
    """

    def __init__(
        self,
        *,
        num_classes,
        variant="b0",
        architecture="original",
        crop_size=512,
        lr=6e-5,
        head_lr_mult=10.0,
        weight_decay=0.01,
        beta1=0.9,
        beta2=0.999,
        lr_schedule="poly",
        warmup_steps=1500,
        lr_power=1.0,
        pct_start=0.3,
        total_steps=1,
        ce_weight=1.0,
        jaccard_weight=0.0,
        clip_grad_norm=0.0,
        clip_grad_value=0.0,
        class_weights=None,
        mixed_precision="none",
        for_training=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Config ===
        self.num_classes = int(num_classes)
        self.variant = variant
        self.architecture = architecture
        self.crop_size = int(crop_size)
        self.lr = float(lr)
        self.head_lr_mult = float(head_lr_mult)
        self.weight_decay = float(weight_decay)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={lr_schedule!r} is not one of {LR_SCHEDULES}")
        self.lr_schedule = lr_schedule
        self.warmup_steps = int(warmup_steps)
        self.lr_power = float(lr_power)
        self.pct_start = float(pct_start)
        self.total_steps = int(total_steps)
        self.ce_weight = float(ce_weight)
        self.jaccard_weight = float(jaccard_weight)
        self.clip_grad_norm = float(clip_grad_norm or 0.0)
        self.clip_grad_value = float(clip_grad_value or 0.0)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.mixed_precision = mixed_precision
        self.for_training = bool(for_training)

        # === Network ===
        self.segformer = segformer.SegFormer(
            variant, num_classes=self.num_classes, **segformer.ARCHITECTURES[architecture]
        )
        size = self.crop_size
        self.segformer(tf.zeros((1, size, size, 3)), training=False)  # creates the weights
        self._class_weights = (
            None if class_weights is None else tf.constant(self.class_weights, tf.float32)
        )
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        if not for_training:
            return

        # === Optimizers: encoder at lr, decode head at lr * head_lr_mult ===
        self.encoder_variables = list(self.segformer.encoder.trainable_variables)
        head_ids = {id(v) for v in self.encoder_variables}
        self.head_variables = [
            v for v in self.segformer.trainable_variables if id(v) not in head_ids
        ]
        self.encoder_optimizer = self._make_optimizer(self.lr)
        self.head_optimizer = self._make_optimizer(self.lr * self.head_lr_mult)
        # Built here, i.e. inside strategy.scope() when the caller opened one.
        self.encoder_optimizer.build(self.encoder_variables)
        self.head_optimizer.build(self.head_variables)

    @classmethod
    def from_run_config(
        cls, config, num_classes, total_steps=1, class_weights=None, for_training=True
    ):
        """The trainer of a resolved SegFormerConfig."""
        return cls(
            num_classes=num_classes,
            variant=config.variant,
            architecture=config.architecture,
            crop_size=config.crop_size,
            lr=config.lr,
            head_lr_mult=config.head_lr_mult,
            weight_decay=config.weight_decay,
            beta1=config.beta1,
            beta2=config.beta2,
            lr_schedule=config.lr_schedule,
            warmup_steps=config.warmup_steps,
            lr_power=config.lr_power,
            pct_start=config.pct_start,
            total_steps=total_steps,
            ce_weight=config.ce_weight,
            jaccard_weight=config.jaccard_weight,
            clip_grad_norm=config.clip_grad_norm,
            clip_grad_value=config.clip_grad_value,
            class_weights=class_weights,
            mixed_precision=config.mixed_precision,
            for_training=for_training,
        )

    def get_config(self):
        """The constructor arguments (one attribute each), keras-hub style."""
        return {
            "num_classes": self.num_classes,
            "variant": self.variant,
            "architecture": self.architecture,
            "crop_size": self.crop_size,
            "lr": self.lr,
            "head_lr_mult": self.head_lr_mult,
            "weight_decay": self.weight_decay,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "lr_schedule": self.lr_schedule,
            "warmup_steps": self.warmup_steps,
            "lr_power": self.lr_power,
            "pct_start": self.pct_start,
            "total_steps": self.total_steps,
            "ce_weight": self.ce_weight,
            "jaccard_weight": self.jaccard_weight,
            "clip_grad_norm": self.clip_grad_norm,
            "clip_grad_value": self.clip_grad_value,
            "class_weights": self.class_weights,
            "mixed_precision": self.mixed_precision,
            "for_training": self.for_training,
        }

    @property
    def loss_scaled(self):
        """Whether the train step scales the loss (mixed float16)."""
        return isinstance(self.encoder_optimizer, keras.optimizers.LossScaleOptimizer)

    def _schedule(self, lr):
        if self.lr_schedule == "one_cycle":
            return OneCycleCosine(lr, self.total_steps, self.pct_start)
        return PolyWithWarmup(lr, self.total_steps, self.warmup_steps, self.lr_power)

    def _make_optimizer(self, lr):
        optimizer = keras.optimizers.AdamW(
            learning_rate=self._schedule(lr),
            weight_decay=self.weight_decay,
            beta_1=self.beta1,
            beta_2=self.beta2,
        )
        # No weight decay on normalisation parameters (LayerNorm / BatchNorm gamma and beta).
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])
        if self.mixed_precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def call(self, images, training=False):
        return self.segformer(images, training=training)

    def train_step(self, batch):
        """One step on a per-replica batch {"image": normalised [N,H,W,3], "label": [N,H,W]}."""
        variables = self.encoder_variables + self.head_variables
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            logits = self.segformer(batch["image"], training=True)  # [N, H/4, W/4, C] float32
            terms = {}
            if self.ce_weight:
                terms["CE"] = self.ce_weight * seg_losses.cross_entropy(
                    logits, batch["label"], class_weights=self._class_weights
                )
            if self.jaccard_weight:
                terms["Jaccard"] = self.jaccard_weight * seg_losses.power_jaccard_loss(
                    logits, batch["label"], self.num_classes
                )
            loss = terms["loss"] = tf.add_n(list(terms.values()))
            # Gradients are summed over replicas by the optimizer: divide by their number.
            scaled = loss / replicas
            if self.loss_scaled:
                scaled = self.encoder_optimizer.scale_loss(scaled)
        grads = tape.gradient(scaled, variables)
        # The per-replica gradient is (its batch's mean gradient) / replicas, times the loss
        # scale under mixed float16: the clipping thresholds are scaled alike.
        unit = 1.0 / replicas
        if self.loss_scaled:
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            unit = self.encoder_optimizer.dynamic_scale / replicas
        if self.clip_grad_value:
            limit = self.clip_grad_value * unit
            grads = [tf.clip_by_value(g, -limit, limit) for g in grads]
        if self.clip_grad_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_grad_norm * unit)
        if self.loss_scaled:
            # Every gradient NaN when any was not finite (clipping may have hidden it), so both
            # loss-scale optimizers skip the step and halve their scales together.
            poison = tf.where(finite, 1.0, float("nan"))
            grads = [g * tf.cast(poison, g.dtype) for g in grads]
        n = len(self.encoder_variables)
        self.encoder_optimizer.apply_gradients(zip(grads[:n], self.encoder_variables))
        self.head_optimizer.apply_gradients(zip(grads[n:], self.head_variables))
        return {k: tf.cast(v, tf.float32) for k, v in terms.items()}

    def learning_rates(self):
        return {
            "lr_encoder": self.encoder_optimizer.learning_rate,
            "lr_head": self.head_optimizer.learning_rate,
        }

    def checkpoint_objects(self):
        """What a training checkpoint holds (names are part of the checkpoint format)."""
        objects = {"segformer": variable_bundle(self.segformer), "step": self.step}
        if hasattr(self, "encoder_optimizer"):
            if self.loss_scaled:
                # The AdamW states under their usual names (a run can drop mixed float16 when
                # resumed); the loss scales beside them.
                objects["encoder_optimizer"] = self.encoder_optimizer.inner_optimizer
                objects["head_optimizer"] = self.head_optimizer.inner_optimizer
                objects["encoder_loss_scale"] = self.encoder_optimizer
                objects["head_loss_scale"] = self.head_optimizer
            else:
                objects["encoder_optimizer"] = self.encoder_optimizer
                objects["head_optimizer"] = self.head_optimizer
        return objects

    def parameter_counts(self):
        encoder = sum(int(tf.size(v)) for v in self.segformer.encoder.trainable_variables)
        total = sum(int(tf.size(v)) for v in self.segformer.trainable_variables)
        return {"segformer": total, "encoder": encoder, "decode_head": total - encoder}
