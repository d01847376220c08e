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
        config: the resolved train config (flags.resolve_train_config, --model=segformer).
        num_classes: classes predicted (label 255 is ignored).
        total_steps: length of the lr schedule in steps.
        class_weights: optional [num_classes] cross-entropy weights.
        for_training: False builds the network only (inference).
    """

    def __init__(
        self, config, num_classes, total_steps=1, class_weights=None, for_training=True, **kwargs
    ):
        super().__init__(**kwargs)
        self.config = config
        self.num_classes = int(num_classes)
        self.segformer = segformer.SegFormer(
            config.variant,
            num_classes=self.num_classes,
            **segformer.ARCHITECTURES[config.architecture],
        )
        size = config.crop_size
        self.segformer(tf.zeros((1, size, size, 3)), training=False)  # creates the weights
        self.class_weights = (
            None if class_weights is None else tf.constant(class_weights, tf.float32)
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
        lr = config.lr
        self.encoder_optimizer = self._make_optimizer(lr, total_steps)
        self.head_optimizer = self._make_optimizer(lr * config.head_lr_mult, total_steps)
        # Built here, i.e. inside strategy.scope() when the caller opened one.
        self.encoder_optimizer.build(self.encoder_variables)
        self.head_optimizer.build(self.head_variables)

    def _make_optimizer(self, lr, total_steps):
        cfg = self.config
        optimizer = keras.optimizers.AdamW(
            learning_rate=PolyWithWarmup(lr, total_steps, cfg.warmup_steps, cfg.lr_power),
            weight_decay=cfg.weight_decay,
            beta_1=cfg.beta1,
            beta_2=cfg.beta2,
        )
        # No weight decay on normalisation parameters (LayerNorm / BatchNorm gamma and beta).
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])
        return optimizer

    def call(self, images, training=False):
        return self.segformer(images, training=training)

    def train_step(self, batch):
        """One step on a per-replica batch {"image": normalised [N,H,W,3], "label": [N,H,W]}."""
        cfg = self.config
        variables = self.encoder_variables + self.head_variables
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            logits = self.segformer(batch["image"], training=True)  # [N, H/4, W/4, C] float32
            terms = {}
            if cfg.ce_weight:
                terms["CE"] = cfg.ce_weight * seg_losses.cross_entropy(
                    logits, batch["label"], class_weights=self.class_weights
                )
            if cfg.jaccard_weight:
                terms["Jaccard"] = cfg.jaccard_weight * seg_losses.power_jaccard_loss(
                    logits, batch["label"], self.num_classes
                )
            loss = terms["loss"] = tf.add_n(list(terms.values()))
            # Gradients are summed over replicas by the optimizer: divide by their number.
            scaled = loss / replicas
        grads = tape.gradient(scaled, variables)
        if cfg.clip_grad_norm:
            # The per-replica gradient is (its batch's mean gradient) / replicas.
            grads, _ = tf.clip_by_global_norm(grads, cfg.clip_grad_norm / replicas)
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
