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

from core.errors import UserError
import contextlib
import os
import sys

from absl import flags

from models import presets

FLAGS = flags.FLAGS


class ConfigError(UserError):
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
        None,
        ["scenes", "ade20k", "folders", "facesynthetics", "cityscapes", "json", "documents",
         "images"],
        "Default: scenes (spade, segformer), documents (stylegan2). scenes: the built-in "
        "procedural scenes (generated on demand under --data_root, ADE20K layout); ade20k: the "
        "official ADEChallengeData2016 folder at --data_root; folders: --image_dir / --label_dir "
        "matched by file stem. Segmentation only: facesynthetics (--data_root), cityscapes "
        "(--data_root with leftImg8bit/ and gtFine/), json (--train_list / --val_list, as "
        "written by our synthesizers). StyleGAN2 only (unlabelled images): documents (the "
        "built-in procedural pages cut into crops under --data_root), images (--image_dir, or "
        "--train_list / --val_list JSON lists of image paths).",
    )
    d.DEFINE_string(
        "train_list", None, "JSON list of training pairs (--dataset=json) or of image paths "
        "(--dataset=images)."
    )
    d.DEFINE_string(
        "val_list", None, "JSON list of validation pairs (--dataset=json) or of image paths "
        "(--dataset=images)."
    )
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
    d.DEFINE_integer(
        "num_pages", 40, "Training pages to generate for --dataset=documents (a tenth more are "
        "held out for evaluation)."
    )
    d.DEFINE_integer(
        "num_crops", 4000, "Crops cut from the pages for --dataset=documents (90/10 split)."
    )


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
        "segformer_b0 .. segformer_b5; stylegan2: tiny, stylegan2_256).",
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

    # StyleGAN2 (--model=stylegan2).
    d.DEFINE_integer("resolution", None, "Generated image size, a power of 2, 32..1024 (preset).")
    d.DEFINE_integer(
        "channel_multiplier", None, "Width of the 64 px and finer blocks (preset; 2 as in "
        "Synthesis in Style, 1 = config-e widths)."
    )
    d.DEFINE_integer("w_dim", None, "Size of the intermediate latent w (preset: 512).")
    d.DEFINE_integer("mapping_layers", None, "Dense layers of the mapping network (preset: 8).")
    d.DEFINE_float("r1_gamma", None, "R1 penalty weight gamma on reals (preset: 10).")
    d.DEFINE_integer("r1_interval", None, "Lazy R1: every this many D steps (preset: 16).")
    d.DEFINE_float(
        "pl_weight", None, "Path-length regularisation weight (preset: 2; 0 switches it off)."
    )
    d.DEFINE_integer(
        "pl_interval", None, "Lazy path-length regularisation: every this many G steps "
        "(preset: 4; 0 switches it off)."
    )
    d.DEFINE_float("style_mixing_prob", None, "Probability of style mixing (preset: 0.9).")
    d.DEFINE_float(
        "ema_half_life_kimg", None, "Half-life of the generator EMA in thousands of images "
        "(preset: 10, i.e. decay 0.5 ** (32 / 10000) per batch of 32)."
    )
    d.DEFINE_enum(
        "lr_schedule", None, ["constant", "cosine"], "Learning-rate schedule (preset; Synthesis "
        "in Style: cosine over --max_steps)."
    )

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
    if config["dataset"] is None:
        config["dataset"] = "documents" if config["model"] == "stylegan2" else "scenes"
    if config["model"] == "spade":
        _validate_spade_config(config)
    elif config["model"] == "stylegan2":
        _validate_stylegan2_config(config)
    else:
        _validate_segformer_config(config)
    _validate_common(config)
    return config


def _positive(config, *names):
    for name in names:
        if config.get(name) is None or config[name] <= 0:
            raise ConfigError(f"--{name} must be positive, got {config.get(name)}")


def _validate_common(config):
    if config["model"] != "stylegan2":
        _positive(config, "crop_size")
    _positive(config, "batch_size", "total_epochs", "print_info_freq")
    _positive(config, "save_img_freq", "save_model_freq", "keep_checkpoints", "lr")
    if config["max_steps"] < 0 or config["max_minutes"] < 0:
        raise ConfigError("--max_steps and --max_minutes must be >= 0")
    if config["dataset"] == "folders" and not (config["image_dir"] and config["label_dir"]):
        raise ConfigError("--dataset=folders needs --image_dir and --label_dir")
    if config["dataset"] == "json" and not config["train_list"]:
        raise ConfigError("--dataset=json needs --train_list")


def _validate_segformer_config(config):
    if config["dataset"] == "images":
        raise ConfigError(
            "--dataset=images holds unlabelled images (--model=stylegan2); a segmenter needs "
            "labelled pairs"
        )
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


def _validate_stylegan2_config(config):
    if config["dataset"] not in ("documents", "images"):
        raise ConfigError(
            f"--dataset={config['dataset']} holds labelled pairs; --model=stylegan2 trains on "
            "unlabelled images: --dataset=documents (built-in) or --dataset=images"
        )
    if config["dataset"] == "images" and not (config["image_dir"] or config["train_list"]):
        raise ConfigError("--dataset=images needs --image_dir or --train_list")
    resolution = config["resolution"]
    if resolution not in (32, 64, 128, 256, 512, 1024):
        raise ConfigError(f"--resolution={resolution} must be a power of 2 in 32..1024")
    _positive(config, "channel_multiplier", "z_dim", "w_dim", "mapping_layers", "r1_interval")
    _positive(config, "num_pages", "num_crops")
    if config["pl_weight"] < 0 or config["pl_interval"] < 0 or config["r1_gamma"] < 0:
        raise ConfigError("--pl_weight, --pl_interval and --r1_gamma must be >= 0")
    if not 0 <= config["style_mixing_prob"] <= 1:
        raise ConfigError(f"--style_mixing_prob={config['style_mixing_prob']} must lie in [0, 1]")
    if config["mixed_precision"] != "none":
        raise ConfigError(
            "--model=stylegan2 trains in float32 only (R1 and path-length penalties are second-"
            "order gradients that under- and overflow in 16-bit); use --mixed_precision=none"
        )


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
    flags.DEFINE_enum("model", "spade", ["spade", "stylegan2"], "Model family.")
    flags.DEFINE_enum(
        "mode",
        None,
        ["labels", "samples", "clusters", "dataset"],
        "labels (spade, the default): a folder of label maps -> images. stylegan2: samples = "
        "--num_samples random images; clusters = cluster every synthesis layer's features "
        "(Synthesis in Style, step 3); dataset = image / mask pairs from annotated clusters "
        "(step 6).",
    )
    flags.DEFINE_string("label_dir", None, "Folder of label map PNGs to synthesize from.")
    flags.DEFINE_string(
        "output_dir", None, "Where the results are written (default: outputs/synthesized; "
        "clusters: <checkpoint_dir>/clusters; dataset: outputs/synthetic_dataset)."
    )
    flags.DEFINE_string(
        "style_filename", None, "Style image for a --use_vae run (otherwise z is random)."
    )
    flags.DEFINE_alias("style_image", "style_filename")
    flags.DEFINE_integer("batch_size", 8, "Label maps / latents per batch.")
    _define_source_flags()
    flags.DEFINE_integer("seed", 0, "Seed of the random z.")
    flags.DEFINE_bool("overwrite", False, "Overwrite existing output files.")
    # StyleGAN2 / Synthesis in Style.
    flags.DEFINE_integer(
        "num_samples", 100, "samples: images to write; clusters: generated samples clustered."
    )
    flags.DEFINE_float(
        "truncation_psi", 1.0, "Truncation towards the mean w (1 = off; e.g. 0.7 for fewer "
        "artefacts, less variety)."
    )
    flags.DEFINE_string("k_range", "3-23", "clusters: the k values, 'lo-hi' or 'a,b,c'.")
    flags.DEFINE_integer(
        "max_pixels", 20000, "clusters: pixels per layer and batch fed to the k-means fit "
        "(bounds memory and time; assignment always uses every pixel)."
    )
    flags.DEFINE_string(
        "clusters_dir", None, "dataset: the cluster run of --mode=clusters (default "
        "<checkpoint_dir>/clusters)."
    )
    flags.DEFINE_integer("k", None, "dataset: the number of clusters whose labels are used.")
    flags.DEFINE_string(
        "mapping", None, "dataset: cluster-label JSON written by the annotator (default "
        "<clusters_dir>/annotations_k<k>.json)."
    )
    flags.DEFINE_string(
        "palette", "documents", "Class-colour JSON: a label-set name / file, or the original "
        "tool's {class: '#RRGGBB'} form."
    )
    flags.DEFINE_list(
        "coarse_layers", None, "dataset: layers whose clusters decide the class (default: the "
        "two layers at a quarter of the resolution, e.g. 64 px at 256 px)."
    )
    flags.DEFINE_list(
        "fine_layers", None, "dataset: layers whose clusters decide the shape (default: the two "
        "full-resolution layers)."
    )
    flags.DEFINE_integer("min_area", 50, "dataset: coarse regions under this many px^2 dropped.")
    flags.DEFINE_enum(
        "overlap_policy", "most", ["most", "any-first"], "dataset: an ink component takes the "
        "class of the coarse region it overlaps most, or the first class (palette order) it "
        "overlaps at all."
    )
    flags.DEFINE_integer("num_images", 1000, "dataset: image / mask pairs to write.")
    flags.DEFINE_float("val_fraction", 0.1, "dataset: share of pairs in the validation split.")


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


def define_evaluate_flags(flag_values=FLAGS):
    """Defines the flags of evaluate.py in `flag_values` (absl's global FLAGS by default)."""
    d = _Definer(flag_values)
    d.DEFINE_enum(
        "mode", "synthesis", ["synthesis", "synthetic_to_real"],
        "synthesis: FID / KID of --synth_dir against --real_dir (and semantic consistency with "
        "--label_dir and --segmenter); synthetic_to_real: train SegFormer on real, synthetic "
        "and real + synthetic data on one budget and compare them on held-out real images.",
    )
    # --mode=synthesis
    d.DEFINE_string("synth_dir", None, "Synthesized images (searched recursively).")
    d.DEFINE_string("real_dir", None, "Real images to compare with (searched recursively).")
    d.DEFINE_string(
        "label_dir", None, "The label maps the --synth_dir images were synthesized from, "
        "matched by relative path and stem (<stem>.png or <stem>_seg.png)."
    )
    d.DEFINE_string(
        "segmenter", None, "A segmenter trained on real data for semantic consistency: an "
        "exported SegFormer SavedModel (train.py's <run>/export) or a SegFormer run directory."
    )
    d.DEFINE_string(
        "inception_weights", "imagenet", "InceptionV3 weights: imagenet (Keras download), a "
        "local .h5 / .weights.h5 file, or random (smoke tests only; NOT comparable to published "
        "FIDs)."
    )
    d.DEFINE_integer(
        "image_size", 0, "Resize every image to this square size (px) before Inception, e.g. "
        "the synthesis size; 0 keeps each folder's own size (one size per folder)."
    )
    d.DEFINE_integer("batch_size", 16, "Images per Inception / segmenter batch.")
    d.DEFINE_integer("kid_subsets", 100, "Random subsets KID is averaged over.")
    d.DEFINE_integer("kid_subset_size", 1000, "Images per KID subset (fewer if a set is smaller).")
    d.DEFINE_integer("seed", 0, "Seed of the KID subsets (and of random Inception weights).")
    d.DEFINE_string("output", None, "Write the results as JSON to this file.")
    # --mode=synthetic_to_real
    d.DEFINE_string(
        "train_flags", "", "train.py flags shared by the three SegFormer runs (dataset, preset, "
        "--max_steps, --batch_size, --seed, ...), one string, e.g. \"--dataset=scenes "
        "--preset=tiny --max_steps=300\"."
    )
    d.DEFINE_string(
        "spade_model", None, "Exported SPADE SavedModel: synthesize the synthetic training set "
        "from the real training label maps."
    )
    d.DEFINE_string("synthetic_list", None, "Synthetic training pairs as a JSON pair list.")
    d.DEFINE_string("synthetic_image_dir", None, "Synthetic training images (with "
                    "--synthetic_label_dir, matched by stem).")
    d.DEFINE_string("synthetic_label_dir", None, "Label maps of --synthetic_image_dir.")
    d.DEFINE_string("output_dir", "outputs/synthetic_to_real", "Results and run directories.")
    d.DEFINE_bool("overwrite", False, "Overwrite existing results (--output, --output_dir).")
