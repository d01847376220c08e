"""SegFormer training logic: the segmenter, its two AdamW optimizers and one train step.

The recipe of the SegFormer paper: AdamW (lr 6e-5, weight decay 0.01, none on normalisation
parameters), the decode head at lr x10, linear warm-up then poly decay; cross-entropy with ignore
index 255 (optionally class-weighted, optionally plus the power-Jaccard loss of the
FaceSynthetics system), logits upsampled to the label size in the loss.
"""

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
        warmup_steps: linear warm-up steps.
        lr_power: power of the poly decay.
        total_steps: length of the lr schedule in steps.
        ce_weight: weight of the cross-entropy loss (0: off).
        jaccard_weight: weight of the power-Jaccard loss (0: off).
        clip_grad_norm: global gradient-norm clipping (0: off).
        class_weights: optional [num_classes] cross-entropy weights.
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
        warmup_steps=1500,
        lr_power=1.0,
        total_steps=1,
        ce_weight=1.0,
        jaccard_weight=0.0,
        clip_grad_norm=0.0,
        class_weights=None,
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
        self.warmup_steps = int(warmup_steps)
        self.lr_power = float(lr_power)
        self.total_steps = int(total_steps)
        self.ce_weight = float(ce_weight)
        self.jaccard_weight = float(jaccard_weight)
        self.clip_grad_norm = float(clip_grad_norm or 0.0)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
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
            warmup_steps=config.warmup_steps,
            lr_power=config.lr_power,
            total_steps=total_steps,
            ce_weight=config.ce_weight,
            jaccard_weight=config.jaccard_weight,
            clip_grad_norm=config.clip_grad_norm,
            class_weights=class_weights,
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
            "warmup_steps": self.warmup_steps,
            "lr_power": self.lr_power,
            "total_steps": self.total_steps,
            "ce_weight": self.ce_weight,
            "jaccard_weight": self.jaccard_weight,
            "clip_grad_norm": self.clip_grad_norm,
            "class_weights": self.class_weights,
            "for_training": self.for_training,
        }

    def _make_optimizer(self, lr):
        optimizer = keras.optimizers.AdamW(
            learning_rate=PolyWithWarmup(lr, self.total_steps, self.warmup_steps, self.lr_power),
            weight_decay=self.weight_decay,
            beta_1=self.beta1,
            beta_2=self.beta2,
        )
        # No weight decay on normalisation parameters (LayerNorm / BatchNorm gamma and beta).
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])
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
        grads = tape.gradient(scaled, variables)
        if self.clip_grad_norm:
            # The per-replica gradient is (its batch's mean gradient) / replicas.
            grads, _ = tf.clip_by_global_norm(grads, self.clip_grad_norm / replicas)
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
            objects["encoder_optimizer"] = self.encoder_optimizer
            objects["head_optimizer"] = self.head_optimizer
        return objects

    def parameter_counts(self):
        encoder = sum(int(tf.size(v)) for v in self.segformer.encoder.trainable_variables)
        total = sum(int(tf.size(v)) for v in self.segformer.trainable_variables)
        return {"segformer": total, "encoder": encoder, "decode_head": total - encoder}
