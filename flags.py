"""Every command-line flag of semsynth, defined in one place.

Scripts import this module under a name that does not shadow `absl.flags`:

    import flags as cli
    cli.define_train_flags()
    ...
    config = cli.resolve_train_config(absl.flags.FLAGS)

Flag names follow the SPADE TF port where it has a name for the same thing (--image_dir,
--label_dir, --use_vae, --batch_size, --z_dim, --lambda_vgg, --checkpoint_dir, ...). Flags whose
default is "preset" take their value from --preset unless given on the command line.
"""

import contextlib
import os
import sys

from absl import flags

from models import presets

FLAGS = flags.FLAGS


class ConfigError(ValueError):
    """A flag value (or a combination of them) that cannot work; the message names the flag."""


@contextlib.contextmanager
def user_errors(program):
    """Turns errors about the user's input into one clear line and exit status 2.

    Errors of our own code (bugs) keep their traceback.
    """
    from datasets.pairs import DatasetError
    from semantic_labels import LabelSetError
    from training.run_dir import RunDirError

    from absl import logging

    # TensorFlow's INFO lines (checkpoint sharding, SavedModel assets) drown the progress bar;
    # --verbosity=0 brings them back.
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    try:
        yield
    except (ConfigError, DatasetError, LabelSetError, RunDirError, FileNotFoundError,
            FileExistsError, NotImplementedError) as e:
        print(f"{program}: error: {e}", file=sys.stderr)
        sys.exit(2)

# Config keys that may differ between the run that wrote a checkpoint and the run that resumes
# it: they change how long or how visibly we train, never what is trained. Every other key must
# match, so a resume can never silently mix two configurations.
RESUMABLE_KEYS = frozenset(
    {
        "max_steps",
        "max_minutes",
        "total_epochs",
        "decay_epoch",
        "print_info_freq",
        "save_img_freq",
        "save_model_freq",
        "keep_checkpoints",
        "dry_run",
        "distribute",
        "xla",
        "mixed_precision",
        "export",
        "tensorboard_dir",
        "results_dir",
        "deterministic",
        "progress",
    }
)


def _define_data_flags(d):
    d.DEFINE_enum(
        "dataset",
        "scenes",
        ["scenes", "ade20k", "folders", "facesynthetics", "cityscapes", "json"],
        "scenes: the built-in procedural scenes (generated on demand under --data_root, ADE20K "
        "layout); ade20k: the official ADEChallengeData2016 folder at --data_root; folders: "
        "--image_dir / --label_dir matched by file stem. Segmentation only: facesynthetics "
        "(--data_root), cityscapes (--data_root with leftImg8bit/ and gtFine/), json "
        "(--train_list / --val_list, as written by our synthesizers).",
    )
    d.DEFINE_string("train_list", None, "JSON list of training pairs (--dataset=json).")
    d.DEFINE_string("val_list", None, "JSON list of validation pairs (--dataset=json).")
    d.DEFINE_string(
        "data_root",
        "data",
        "scenes: where the built-in scenes are generated; ade20k: the ADEChallengeData2016 "
        "folder (or its parent).",
    )
    d.DEFINE_string("image_dir", None, "Images of --dataset=folders (searched recursively).")
    d.DEFINE_string("label_dir", None, "Label maps of --dataset=folders (8-bit PNG class ids).")
    d.DEFINE_string("val_image_dir", None, "Validation images of --dataset=folders (optional).")
    d.DEFINE_string("val_label_dir", None, "Validation labels of --dataset=folders (optional).")
    d.DEFINE_string(
        "semantic_label_path",
        "ade20k",
        "Label set: a built-in name (ade20k, scenes) or a JSON file in the format of "
        "semantic_labels/README.md. Fixes the number of classes.",
    )
    d.DEFINE_integer("num_scenes", 300, "Training scenes to generate for --dataset=scenes.")
    d.DEFINE_integer("scenes_size", 256, "Resolution of the generated scenes (px).")


_TRAIN_FLAG_NAMES = []


def define_train_flags(flag_values=FLAGS):
    """Defines the flags of train.py in `flag_values` (absl's global FLAGS by default)."""
    before = set(flag_values)
    _define_train_flags(_Definer(flag_values))
    _TRAIN_FLAG_NAMES[:] = sorted(set(flag_values) - before)


def config_from_args(args=()):
    """The resolved train config for command-line style `args` (for tests, benchmarks, demos).

    Example: config_from_args(["--preset=tiny", "--use_vae"]).
    """
    flag_values = flags.FlagValues()
    define_train_flags(flag_values)
    flag_values(["train.py", *args])
    return resolve_train_config(flag_values)


class _Definer:
    """d.DEFINE_* bound to one FlagValues."""

    def __init__(self, flag_values):
        self._flag_values = flag_values

    def __getattr__(self, name):
        define = getattr(flags, name)
        return lambda *args, **kwargs: define(*args, flag_values=self._flag_values, **kwargs)


def _define_train_flags(d):
    d.DEFINE_enum(
        "model", "spade", list(presets.MODELS), "Model family to train."
    )
    d.DEFINE_string(
        "preset",
        "tiny",
        "Named configuration of the model family (spade: tiny, ade20k_256; segformer: tiny, "
        "segformer_b0 .. segformer_b5).",
    )
    d.DEFINE_bool(
        "dry_run", False, "Print the resolved config and every network's parameter count, exit."
    )
    _define_data_flags(d)

    # Run directory.
    d.DEFINE_string(
        "checkpoint_dir",
        None,
        "Run directory: config.json, checkpoints/, logs/ (TensorBoard), samples/, export/. "
        "Default runs/<model>_<preset>. An existing run directory is resumed.",
    )
    d.DEFINE_string(
        "tensorboard_dir", None, "TensorBoard directory (default <checkpoint_dir>/logs)."
    )
    d.DEFINE_string(
        "results_dir", None, "Sample grids directory (default <checkpoint_dir>/samples)."
    )

    # Architecture (default: from the preset).
    d.DEFINE_integer("crop_size", None, "Training crop / synthesis size in px (preset).")
    d.DEFINE_integer("load_size", None, "Resize before the random crop, px (preset).")
    d.DEFINE_integer("ngf", None, "Generator base width (preset).")
    d.DEFINE_integer("ndf", None, "Discriminator / encoder base width (preset).")
    d.DEFINE_integer("z_dim", None, "Dimension of the latent z vector (preset).")
    d.DEFINE_integer("spade_hidden", None, "Hidden width inside SPADE layers (preset).")
    d.DEFINE_enum(
        "num_upsampling_layers",
        None,
        ["normal", "more", "most"],
        "Generator depth: 5, 6 or 7 x2 upsamplings (preset).",
    )
    d.DEFINE_enum(
        "norm_G",
        None,
        ["syncbatch", "batch", "instance"],
        "Parameter-free normalisation inside SPADE (preset; the reference uses syncbatch).",
    )
    d.DEFINE_integer("num_discriminators", None, "Scales of the multiscale D (preset).")
    d.DEFINE_integer("n_layers_D", None, "Conv layers of each PatchGAN (preset).")
    d.DEFINE_integer("encoder_input_size", None, "VAE encoder input size, px (preset).")
    d.DEFINE_bool("use_vae", False, "Train with the VAE image encoder (style control).")

    # Losses.
    d.DEFINE_float("lambda_features", 10.0, "Weight of the feature-matching loss.")
    d.DEFINE_float("lambda_vgg", 10.0, "Weight of the VGG19 perceptual loss.")
    d.DEFINE_float("lambda_kld", 0.05, "Weight of the KL divergence (with --use_vae).")
    d.DEFINE_string(
        "vgg_weights",
        None,
        "VGG19 for the perceptual loss: imagenet (downloaded by Keras), a local weights file, or "
        "none (loss off) (preset).",
    )

    # Optimisation.
    d.DEFINE_integer("batch_size", None, "Global mini-batch size (preset).")
    d.DEFINE_float(
        "lr", None, "Base learning rate (preset; SPADE 2e-4 with TTUR G lr/2, D lr*2; SegFormer "
        "6e-5)."
    )
    d.DEFINE_bool("ttur", True, "Two time-scale update rule (G lr/2, D lr*2).")
    d.DEFINE_float("beta1", None, "Adam beta1 (preset; SPADE 0, SegFormer 0.9).")
    d.DEFINE_float("beta2", None, "Adam beta2 (preset; SPADE 0.9, SegFormer 0.999).")
    d.DEFINE_integer("total_epochs", None, "Total epochs (preset).")
    d.DEFINE_integer(
        "decay_epoch", None, "Epoch from which the lr decays linearly to zero (preset)."
    )
    d.DEFINE_integer(
        "max_steps", None, "Stop after this many steps in total (preset; 0: total_epochs decide)."
    )
    d.DEFINE_float(
        "max_minutes", 0.0, "Stop (checkpoint, export) after this many minutes of this run (0: no limit)."
    )
    d.DEFINE_integer("seed", 0, "Seed of data order, augmentation and latent noise.")
    d.DEFINE_bool(
        "deterministic", False, "Enable TF op determinism (bit-exact resume; slower)."
    )

    # Segmentation (--model=segformer).
    d.DEFINE_string("variant", None, "SegFormer MiT encoder: tiny, b0 .. b5 (preset).")
    d.DEFINE_integer(
        "num_classes", None, "Classes of the segmenter (default: from --semantic_label_path)."
    )
    d.DEFINE_float("weight_decay", None, "AdamW weight decay, none on norms (preset: 0.01).")
    d.DEFINE_float("head_lr_mult", None, "Decode-head lr multiplier (preset: 10).")
    d.DEFINE_integer("warmup_steps", None, "Linear lr warm-up steps (preset: 1500).")
    d.DEFINE_float("lr_power", None, "Power of the poly lr decay (preset: 1.0).")
    d.DEFINE_float("clip_grad_norm", None, "Global gradient-norm clipping, 0 = off (preset).")
    d.DEFINE_float("ce_weight", 1.0, "Weight of the cross-entropy loss.")
    d.DEFINE_float(
        "jaccard_weight", 0.0, "Weight of the power-Jaccard loss (FaceSynthetics recipe: 1)."
    )
    d.DEFINE_string(
        "class_weights", None, "JSON from python -m datasets.class_weights (per-class CE weights)."
    )
    d.DEFINE_string(
        "pretrained", None, "keras-hub preset name or local preset directory (segformer_* or "
        "mit_*) to start from."
    )
    d.DEFINE_integer("eval_freq", None, "Steps between validation runs (preset; 0 = off).")

    # Monitoring and checkpoints.
    d.DEFINE_integer("print_info_freq", 50, "Steps between TensorBoard scalar writes.")
    d.DEFINE_integer("save_img_freq", 500, "Steps between sample grids (TensorBoard + PNG).")
    d.DEFINE_integer("save_model_freq", 1000, "Steps between checkpoints.")
    d.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept (the newest).")
    d.DEFINE_bool("progress", True, "Show a progress bar with ETA.")
    d.DEFINE_bool("export", True, "Export a SavedModel to <checkpoint_dir>/export at the end.")

    # Performance.
    d.DEFINE_enum(
        "mixed_precision",
        "none",
        ["none", "mixed_float16", "mixed_bfloat16"],
        "Keras mixed-precision policy (losses, norm statistics and outputs stay float32).",
    )
    d.DEFINE_bool("xla", False, "Compile the train step with XLA (jit_compile).")
    d.DEFINE_enum(
        "distribute",
        "auto",
        ["auto", "none", "mirrored", "multiworker"],
        "tf.distribute strategy. auto: MultiWorkerMirrored when TF_CONFIG is set, Mirrored "
        "when more than one GPU is visible, otherwise the default strategy.",
    )


def resolve_train_config(flag_values=FLAGS):
    """Merges --preset with the flags given on the command line into one plain dict."""
    if not _TRAIN_FLAG_NAMES:
        raise RuntimeError("call define_train_flags() first")
    config = {name: flag_values[name].value for name in _TRAIN_FLAG_NAMES}
    try:
        preset = presets.get_preset(config["model"], config["preset"])
    except (ValueError, NotImplementedError) as e:
        raise ConfigError(str(e)) from None
    for key, value in preset.items():
        if config.get(key) is None:
            config[key] = value
    if config["checkpoint_dir"] is None:
        config["checkpoint_dir"] = os.path.join("runs", f"{config['model']}_{config['preset']}")
    if config["tensorboard_dir"] is None:
        config["tensorboard_dir"] = os.path.join(config["checkpoint_dir"], "logs")
    if config["results_dir"] is None:
        config["results_dir"] = os.path.join(config["checkpoint_dir"], "samples")
    config.setdefault("max_steps", 0)
    if config["max_steps"] is None:
        config["max_steps"] = 0
    if config["model"] == "spade":
        _validate_spade_config(config)
    else:
        _validate_segformer_config(config)
    _validate_common(config)
    return config


def _positive(config, *names):
    for name in names:
        if config.get(name) is None or config[name] <= 0:
            raise ConfigError(f"--{name} must be positive, got {config.get(name)}")


def _validate_common(config):
    _positive(config, "batch_size", "crop_size", "total_epochs", "print_info_freq")
    _positive(config, "save_img_freq", "save_model_freq", "keep_checkpoints", "lr")
    if config["max_steps"] < 0 or config["max_minutes"] < 0:
        raise ConfigError("--max_steps and --max_minutes must be >= 0")
    if config["dataset"] == "folders" and not (config["image_dir"] and config["label_dir"]):
        raise ConfigError("--dataset=folders needs --image_dir and --label_dir")
    if config["dataset"] == "json" and not config["train_list"]:
        raise ConfigError("--dataset=json needs --train_list")


def _validate_segformer_config(config):
    if config["crop_size"] % 32:
        raise ConfigError(f"--crop_size={config['crop_size']} must be a multiple of 32")
    if config["mixed_precision"] == "mixed_float16":
        raise ConfigError(
            "--mixed_precision=mixed_float16 is not supported for --model=segformer (two "
            "optimizers, encoder and head, cannot share one dynamic loss scale); use "
            "mixed_bfloat16"
        )
    if config["ce_weight"] < 0 or config["jaccard_weight"] < 0:
        raise ConfigError("--ce_weight and --jaccard_weight must be >= 0")
    if config["ce_weight"] + config["jaccard_weight"] <= 0:
        raise ConfigError("--ce_weight + --jaccard_weight must be positive")


def _validate_spade_config(config):
    if config["dataset"] not in ("scenes", "ade20k", "folders"):
        raise ConfigError(
            f"--dataset={config['dataset']} is a segmentation dataset; --model=spade reads "
            "scenes, ade20k or folders"
        )
    _positive(config, "load_size", "ngf", "ndf", "z_dim", "spade_hidden")
    _positive(config, "num_discriminators", "n_layers_D")
    if config["load_size"] < config["crop_size"]:
        raise ConfigError(
            f"--load_size={config['load_size']} must be >= --crop_size={config['crop_size']}"
        )
    if not 0 <= config["decay_epoch"] <= config["total_epochs"]:
        raise ConfigError(
            f"--decay_epoch={config['decay_epoch']} must lie in [0, --total_epochs="
            f"{config['total_epochs']}]"
        )
    num_up = {"normal": 5, "more": 6, "most": 7}[config["num_upsampling_layers"]]
    if config["crop_size"] % 2**num_up:
        raise ConfigError(
            f"--crop_size={config['crop_size']} must be a multiple of {2**num_up} for "
            f"--num_upsampling_layers={config['num_upsampling_layers']}"
        )


def define_test_one_flags():
    """Flags of test_one.py."""
    flags.DEFINE_enum("model", "spade", ["spade"], "Model family.")
    flags.DEFINE_string("label_filename", None, "Label map PNG (8-bit class ids) to synthesize from.")
    flags.DEFINE_string(
        "style_filename", None, "Style image for a --use_vae run (its encoding gives z)."
    )
    flags.DEFINE_alias("style_image", "style_filename")
    flags.DEFINE_integer(
        "num_samples", 1, "Images to synthesize; with a VAE run each uses a different random z."
    )
    _define_source_flags()
    flags.DEFINE_string(
        "results_dir", "outputs/test_one", "Where the PNG(s) are written (<stem>_<i>.png)."
    )
    flags.DEFINE_integer("seed", 0, "Seed of the random z.")
    flags.DEFINE_bool("overwrite", False, "Overwrite existing output files.")


def define_synthesize_flags():
    """Flags of synthesize.py."""
    flags.DEFINE_enum("model", "spade", ["spade"], "Model family.")
    flags.DEFINE_string("label_dir", None, "Folder of label map PNGs to synthesize from.")
    flags.DEFINE_string("output_dir", "outputs/synthesized", "Where the images are written.")
    flags.DEFINE_string(
        "style_filename", None, "Style image for a --use_vae run (otherwise z is random)."
    )
    flags.DEFINE_alias("style_image", "style_filename")
    flags.DEFINE_integer("batch_size", 8, "Label maps per batch.")
    _define_source_flags()
    flags.DEFINE_integer("seed", 0, "Seed of the random z.")
    flags.DEFINE_bool("overwrite", False, "Overwrite existing output files.")


def _define_source_flags():
    flags.DEFINE_string(
        "checkpoint_dir", None, "Run directory of train.py (restores its latest checkpoint)."
    )
    flags.DEFINE_string(
        "saved_model", None, "An exported SavedModel directory (instead of --checkpoint_dir)."
    )


def define_segment_flags(flag_values=FLAGS):
    """Defines the flags of segment.py in `flag_values` (absl's global FLAGS by default)."""
    d = _Definer(flag_values)
    d.DEFINE_string(
        "input", None, "An image file, a folder (its images, not recursive) or a glob pattern "
        "(quoted; ** recurses)."
    )
    d.DEFINE_string("output_dir", "outputs/segmented", "Where the PNGs (and metrics) go.")
    d.DEFINE_string(
        "checkpoint_dir", None, "Run directory of train.py (restores its latest checkpoint)."
    )
    d.DEFINE_string(
        "saved_model", None, "An exported SavedModel directory (instead of --checkpoint_dir)."
    )
    d.DEFINE_enum(
        "mode", "slide", ["slide", "whole"],
        "slide: overlapping --tile_size tiles, probabilities averaged; whole: the full image "
        "padded to a multiple of 32 in one pass.",
    )
    d.DEFINE_integer(
        "tile_size", 512, "Side of the square tiles of --mode=slide (px, a multiple of 32)."
    )
    d.DEFINE_float(
        "overlap", 0.25, "Fraction of a tile shared with its neighbour, in [0, 1) (slide)."
    )
    d.DEFINE_integer("batch_size", 4, "Tiles per forward pass.")
    d.DEFINE_string(
        "gt_dir", None, "Ground-truth label maps (8-bit PNG class ids, 255 = ignore), matched "
        "by stem: <stem>.png or <stem>_seg.png. Enables the metrics."
    )
    d.DEFINE_string(
        "semantic_label_path", None, "Label set for colours and class names: a built-in name "
        "or a JSON file (default: the model's)."
    )
    d.DEFINE_bool(
        "ignore_dontcare", True, "With --gt_dir: ignore ground-truth pixels of the label set's "
        "dontcare class (ADE20K 'other') and leave that class out of the means."
    )
    d.DEFINE_bool("overwrite", False, "Overwrite existing output files.")
