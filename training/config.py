"""The parts of every family's config that the engine reads: the run and the optimiser.

A family's config (models/<family>/config.py) inherits them with datasets.config.DataConfig;
training.loop reads only these fields, so it stays family-agnostic.
"""

import dataclasses
import os

from core.config import Config, ConfigError, field

MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")
DISTRIBUTE = ("auto", "none", "mirrored", "multiworker")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig(Config):
    """How a run trains, is monitored and checkpointed (family-agnostic)."""

    model: str = field("", "Model family (the registry name, e.g. spade).")
    preset: str = field("custom", "Named configuration of the family this config started from.")
    dry_run: bool = field(False, "Print the config and parameter counts, exit.", resumable=True)
    # The run directory is identified by its contents, not by the path it was given as: a moved
    # or copied run resumes.
    checkpoint_dir: str = field(
        None, "Run directory (default runs/<model>_<preset>).", resumable=True
    )
    tensorboard_dir: str = field(
        None, "TensorBoard directory (default <checkpoint_dir>/logs).", resumable=True
    )
    results_dir: str = field(
        None, "Sample grids directory (default <checkpoint_dir>/samples).", resumable=True
    )
    batch_size: int = field(8, "Global mini-batch size (split across replicas).")
    total_epochs: int = field(100, "Total epochs (max_steps decides when set).", resumable=True)
    max_steps: int = field(0, "Stop after this many steps (0: total_epochs).", resumable=True)
    max_minutes: float = field(0.0, "Stop after this many minutes of a run.", resumable=True)
    seed: int = field(0, "Seed of data order, augmentation and latent noise.")
    deterministic: bool = field(False, "TF op determinism (bit-exact resume).", resumable=True)
    eval_freq: int = field(0, "Steps between validation runs (0: off).")
    print_info_freq: int = field(50, "Steps between TensorBoard scalar writes.", resumable=True)
    save_img_freq: int = field(500, "Steps between sample grids.", resumable=True)
    save_model_freq: int = field(1000, "Steps between checkpoints.", resumable=True)
    keep_checkpoints: int = field(3, "Checkpoints kept (the newest).", resumable=True)
    progress: bool = field(True, "Show a progress bar with ETA.", resumable=True)
    export: bool = field(True, "Export a SavedModel at the end.", resumable=True)
    mixed_precision: str = field(
        "none", "Keras mixed-precision policy.", resumable=True, choices=MIXED_PRECISION
    )
    xla: bool = field(False, "Compile the train step with XLA.", resumable=True)
    distribute: str = field(
        "auto",
        "tf.distribute strategy (auto, none, mirrored, multiworker).",
        resumable=True,
        choices=DISTRIBUTE,
    )

    def derive(self):
        super().derive()
        if self.checkpoint_dir is None:
            self._set("checkpoint_dir", os.path.join("runs", f"{self.model}_{self.preset}"))
        if self.tensorboard_dir is None:
            self._set("tensorboard_dir", os.path.join(self.checkpoint_dir, "logs"))
        if self.results_dir is None:
            self._set("results_dir", os.path.join(self.checkpoint_dir, "samples"))
        if self.max_steps is None:
            self._set("max_steps", 0)
        if self.eval_freq is None:
            self._set("eval_freq", 0)

    def validate(self):
        super().validate()
        self.check_positive("batch_size", "total_epochs", "print_info_freq")
        self.check_positive("save_img_freq", "save_model_freq", "keep_checkpoints")
        if self.max_steps < 0 or self.max_minutes < 0:
            raise ConfigError(
                "max_steps and max_minutes must be >= 0", ("max_steps", "max_minutes")
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdamConfig(Config):
    """Adam(W) settings shared by the families."""

    lr: float = field(2e-4, "Base learning rate.")
    beta1: float = field(0.9, "Adam beta1.")
    beta2: float = field(0.999, "Adam beta2.")

    def validate(self):
        super().validate()
        self.check_positive("lr")
