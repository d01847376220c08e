"""Every command-line flag of semsynth, defined in one place.

Scripts import this module under a name that does not shadow `absl.flags`:

    import flags as cli
    cli.define_train_flags()
    ...
    config = cli.resolve_train_config(absl.flags.FLAGS)

Flag names follow the SPADE TF port where it has a name for the same thing (--image_dir,
--label_dir, --use_vae, --batch_size, --z_dim, --lambda_vgg, --checkpoint_dir, ...). Flags whose
default is "preset" take their value from --preset unless given on the command line.

Exit status, the same for every script and `python -m tools.X` command (docs/cli.md):
    0   success (and --help / --helpfull)
    2   a user error: an unknown or malformed flag (absl's parsing errors included), a bad flag
        value or combination, a missing / unreadable / invalid input file, an output that exists
        (without --overwrite), a full disk. One line on stderr, "<program>: error: ...",
        naming the flag or file; no traceback.
    1   an unexpected error of ours (a bug): Python's traceback.
Scripts get it from `run(main)` (absl's app.run with a flag parser that exits 2) and
`user_errors(program)` around main's body; tools from `run_tool`.
"""

import contextlib
import copy
import os
import re
import sys

from absl import flags

import models.families  # noqa: F401  (every family registers itself with training.registry)
from core.config import ConfigError
from core.errors import UserError
from datasets.config import DATASETS, DISCOVER, SOURCE_FIELDS, DataConfig
from training import registry

FLAGS = flags.FLAGS


def run(main, program=None):
    """absl's app.run(main) with the exit-status convention of the module docstring: a flag
    parsing error or an app.UsageError prints one line "<program>: error: ..." and exits 2,
    --help exits 0.

    Args:
        main: the script's main(argv).
        program: how error lines name the script (default: its file name).
    """
    from absl import app

    program = program or os.path.basename(sys.argv[0])

    def guarded_main(argv):
        with user_errors(program):
            return main(argv)

    app.run(guarded_main, flags_parser=lambda argv: _parse_flags(program, FLAGS, argv))


_HELP_FLAGS = {"help", "helpshort", "helpfull", "helpxml", "?", "h"}


def _parse_flags(program, flag_values, argv):
    """Parses argv into flag_values; a flag error exits with status 2 like a user error."""
    # argparse spelled negated booleans --no-progress; absl spells them --noprogress.
    argv = [
        f"--no{arg[5:]}" if arg.startswith("--no-") and arg[5:] in flag_values else arg
        for arg in argv
    ]
    try:
        return flag_values(argv)
    except flags.Error as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as stop:
        # absl's --help prints the usage and exits 1; asking for help is no error.
        asked = any(arg.lstrip("-").split("=")[0] in _HELP_FLAGS for arg in argv[1:])
        if stop.code == 1 and asked:
            sys.exit(0)
        raise


@contextlib.contextmanager
def user_errors(program):
    """Turns errors about the user's input into one clear line and exit status 2.

    Errors of our own code (bugs) keep their traceback (exit status 1).
    """
    from absl import app, logging

    # TensorFlow's INFO lines (checkpoint sharding, SavedModel assets) drown the progress bar;
    # --verbosity=0 brings them back.
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    try:
        yield
    except ConfigError as e:
        print(f"{program}: error: {flag_message(e)}", file=sys.stderr)
        sys.exit(2)
    except (
        UserError,
        FileNotFoundError,
        FileExistsError,
        NotImplementedError,
        app.UsageError,
    ) as e:
        print(f"{program}: error: {e}", file=sys.stderr)
        sys.exit(2)


def flag_message(error):
    """A ConfigError's message with the fields it names written as the flags of those names."""
    message = str(error)
    for name in getattr(error, "fields", ()):
        # A field is a flag where it reads as one: name=value, a name_with_underscores, or the
        # first word (plain words such as "dataset" stay words elsewhere).
        pattern = rf"(?<![\w-]){re.escape(name)}(?==)|(?<![\w-]){re.escape(name)}\b"
        if "_" not in name:
            pattern = rf"(?<![\w-]){re.escape(name)}(?==)|^{re.escape(name)}\b"
        message = re.sub(pattern, f"--{name}", message)
    return message


def _define_data_flags(d):
    d.DEFINE_enum(
        "dataset",
        None,
        list(DATASETS),
        "Default: scenes (spade, segformer), documents (stylegan2); without --dataset, "
        "--image_dir / --label_dir (or --train_list) choose the source that reads them "
        "(spade: folders). scenes: the built-in "
        "procedural scenes (generated on demand under --data_root, ADE20K layout); ade20k: the "
        "official ADEChallengeData2016 folder at --data_root; folders: --image_dir / --label_dir "
        "matched by file stem; cityscapes (--data_root with leftImg8bit/ and gtFine/, "
        "--load_extra adds train_extra/ with extraFine/ labels); streets: the built-in "
        "procedural streets (Cityscapes layout and labelIds, generated on demand under "
        "--data_root; with spade: --semantic_label_path=cityscapes). Segmentation only: "
        "facesynthetics (--data_root), idd (--data_root: IDD_Segmentation with AutoNUE level-3 "
        "labels), celebamask_hq (--data_root: CelebAMask-HQ, part masks merged on first use), "
        "json (--train_list / --val_list, as "
        "written by our synthesizers). StyleGAN2 only (unlabelled images): documents (the "
        "built-in procedural pages cut into crops under --data_root), images (--image_dir, or "
        "--train_list / --val_list JSON lists of image paths).",
    )
    d.DEFINE_string(
        "train_list",
        None,
        "JSON list of training pairs (--dataset=json) or of image paths (--dataset=images).",
    )
    d.DEFINE_string(
        "val_list",
        None,
        "JSON list of validation pairs (--dataset=json) or of image paths (--dataset=images).",
    )
    d.DEFINE_string(
        "data_root",
        "data",
        "scenes: where the built-in scenes are generated; ade20k: the ADEChallengeData2016 "
        "folder (or its parent).",
    )
    d.DEFINE_string(
        "image_dir",
        None,
        "Images of --dataset=folders (searched recursively, matched with the label maps by "
        "file stem); given without --dataset, it selects that source.",
    )
    d.DEFINE_string(
        "label_dir",
        None,
        "Label maps of --dataset=folders (8-bit PNGs of class ids, or of any values with a "
        ".txt label set or none: spade then finds the values).",
    )
    d.DEFINE_string("val_image_dir", None, "Validation images of --dataset=folders (optional).")
    d.DEFINE_string("val_label_dir", None, "Validation labels of --dataset=folders (optional).")
    d.DEFINE_string(
        "semantic_label_path",
        "ade20k",
        "Label set: a built-in name (ade20k, scenes, cityscapes, ...), a JSON file in the "
        "format of semantic_labels/README.md, or a .txt file of label values as the SPADE TF "
        "port writes it ('0, 3, 255': the k-th value is class k; spade: a file that does not "
        "exist yet is filled by scanning the label maps), or 'discover' (spade: scan the label "
        "maps; the default of --dataset=folders). Fixes the number of classes.",
    )
    d.DEFINE_integer("num_scenes", 300, "Training scenes to generate for --dataset=scenes.")
    d.DEFINE_integer("scenes_size", 256, "Resolution of the generated scenes (px).")
    d.DEFINE_integer(
        "num_streets",
        300,
        "Training streets to generate for --dataset=streets (a tenth more for validation).",
    )
    d.DEFINE_integer("streets_height", 128, "Height of the generated streets (px).")
    d.DEFINE_integer("streets_width", 256, "Width of the generated streets (px).")
    d.DEFINE_bool(
        "load_extra",
        False,
        "--dataset=cityscapes: add the extra coarse training images "
        "(leftImg8bit/train_extra/) with their extraFine/train_extra/ labels (Cityscapes-25k).",
    )
    d.DEFINE_integer(
        "num_pages",
        40,
        "Training pages to generate for --dataset=documents (a tenth more are "
        "held out for evaluation).",
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
    d.DEFINE_enum("model", "spade", list(registry.names()), "Model family to train.")
    d.DEFINE_string(
        "preset",
        "tiny",
        "Named configuration of the model family ("
        + "; ".join(f"{name}: {', '.join(registry.get(name).presets)}" for name in registry.names())
        + ").",
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
        "lr",
        None,
        "Base learning rate (preset; SPADE 2e-4 with TTUR G lr/2, D lr*2; SegFormer 6e-5).",
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
        "max_minutes",
        0.0,
        "Stop (checkpoint, export) after this many minutes of this run (0: no limit).",
    )
    d.DEFINE_integer("seed", 0, "Seed of data order, augmentation and latent noise.")
    d.DEFINE_bool("deterministic", False, "Enable TF op determinism (bit-exact resume; slower).")

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
        "class_weights",
        None,
        "Per-class CE weights: JSON from python -m tools.class_weights, or facesynthetics_seed "
        "(the FaceSynthetics system's published frequencies).",
    )
    d.DEFINE_string(
        "pretrained",
        None,
        "keras-hub preset name or local preset directory (segformer_* or mit_*) to start from.",
    )
    d.DEFINE_integer("eval_freq", None, "Steps between validation runs (preset; 0 = off).")

    # StyleGAN2 (--model=stylegan2).
    d.DEFINE_integer("resolution", None, "Generated image size, a power of 2, 8..1024 (preset).")
    d.DEFINE_integer(
        "channel_multiplier",
        None,
        "Width of the 64 px and finer blocks (preset; 2 as in "
        "Synthesis in Style, 1 = config-e widths).",
    )
    d.DEFINE_integer("w_dim", None, "Size of the intermediate latent w (preset: 512).")
    d.DEFINE_integer("mapping_layers", None, "Dense layers of the mapping network (preset: 8).")
    d.DEFINE_float("r1_gamma", None, "R1 penalty weight gamma on reals (preset: 10).")
    d.DEFINE_integer("r1_interval", None, "Lazy R1: every this many D steps (preset: 16).")
    d.DEFINE_float(
        "pl_weight", None, "Path-length regularisation weight (preset: 2; 0 switches it off)."
    )
    d.DEFINE_integer(
        "pl_interval",
        None,
        "Lazy path-length regularisation: every this many G steps (preset: 4; 0 switches it off).",
    )
    d.DEFINE_float("style_mixing_prob", None, "Probability of style mixing (preset: 0.9).")
    d.DEFINE_float(
        "ema_half_life_kimg",
        None,
        "Half-life of the generator EMA in thousands of images "
        "(preset: 10, i.e. decay 0.5 ** (32 / 10000) per batch of 32).",
    )
    d.DEFINE_float(
        "ema_rampup",
        None,
        "EMA ramp-up as StyleGAN2-ADA: the half-life is at most this fraction of the images seen "
        "so far (preset: tiny 0.05, stylegan2_256 0 = off as in Synthesis in Style).",
    )
    d.DEFINE_enum(
        "lr_schedule",
        None,
        ["constant", "cosine", "poly", "one_cycle"],
        "Learning-rate schedule (preset). stylegan2: constant | cosine (Synthesis in Style: "
        "cosine over --max_steps); segformer: poly (warm-up, poly decay) | one_cycle (PyTorch "
        "OneCycleLR with cosine annealing, the FaceSynthetics recipe).",
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
    _define_spade_aspect_train_flags(d)
    _define_palette_train_flags(d)
    _define_osmis_train_flags(d)
    _define_segformer_train_flags(d)
    _define_spade_port_train_flags(d)


def resolve_train_config(flag_values=FLAGS):
    """The typed config of the --model family: its --preset, with the flags given on the command
    line applied on top. A flag that the family has no use for is an error, never ignored."""
    if not _TRAIN_FLAG_NAMES:
        raise RuntimeError("call define_train_flags() first")
    model, preset = flag_values["model"].value, flag_values["preset"].value
    try:
        family = registry.get(model)
        base = registry.preset(model, preset)
    except ConfigError as e:
        raise ConfigError(flag_message(e), e.fields) from None
    given = {
        name: flag_values[name].value
        for name in _TRAIN_FLAG_NAMES
        if flag_values[name].present and name not in ("model", "preset", "log_dir")
    }
    given = _log_dir_flag(flag_values, given)
    if "aspect_ratio" in family.config_class.field_names():
        given = _image_size_flags(given)
    unused = sorted(set(given) - family.config_class.field_names())
    if unused:
        raise ConfigError(
            f"{', '.join('--' + name for name in unused)} "
            f"{'does' if len(unused) == 1 else 'do'} not apply to --model={model}"
        )
    # Paths derived from the run directory follow a --checkpoint_dir given here, not the
    # preset's default run directory.
    derived = {
        name: None
        for name in ("tensorboard_dir", "results_dir", "checkpoint_dir")
        if name not in given
    }
    try:
        given = _data_source_flags(base, {**derived, **given})
        config = base.replace(**given)
        _check_data_flags_read(config, given)
        return config
    except ConfigError as e:
        raise ConfigError(flag_message(e), e.fields) from None


def synthetic_to_real_config(train_args):
    """The SegFormer config shared by the runs of evaluate.py --mode=synthetic_to_real.

    Validation during training is off unless asked for: each run is evaluated once, at the end,
    on the held-out split (an --eval_freq in `train_args`, given later, wins).
    """
    return config_from_args(["--model=segformer", "--eval_freq=0", *train_args])


def define_test_one_flags():
    """Flags of test_one.py."""
    flags.DEFINE_enum("model", "spade", ["spade"], "Model family.")
    flags.DEFINE_string(
        "label_filename",
        None,
        "Label map PNG to synthesize from: 8-bit class ids, or the raw values of a run on "
        "label values (a .txt / discovered label set), which are mapped as in training.",
    )
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
    _define_test_one_port_flags()


def define_synthesize_flags():
    """Flags of synthesize.py."""
    flags.DEFINE_enum("model", "spade", ["spade", "stylegan2", "osmis", "palette"], "Model family.")
    flags.DEFINE_enum(
        "mode",
        None,
        ["labels", "samples", "clusters", "dataset", "pairs", "demos"],
        "labels (spade, the default): a folder of label maps -> images. stylegan2: samples = "
        "--num_samples random images; clusters = cluster every synthesis layer's features "
        "(Synthesis in Style, step 3); dataset = image / mask pairs from annotated clusters "
        "(step 6). palette: pairs (the default) = palette -> layout -> image pairs; demos = "
        "palette and latent interpolation strips and GIFs.",
    )
    flags.DEFINE_string("label_dir", None, "Folder of label map PNGs to synthesize from.")
    flags.DEFINE_string(
        "output_dir",
        None,
        "Where the results are written (default: outputs/synthesized; "
        "clusters: <checkpoint_dir>/clusters; dataset: outputs/synthetic_dataset; "
        "osmis: outputs/osmis_pairs).",
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
        "truncation_psi",
        1.0,
        "Truncation towards the mean w (1 = off; e.g. 0.7 for fewer artefacts, less variety).",
    )
    flags.DEFINE_string("k_range", "3-23", "clusters: the k values, 'lo-hi' or 'a,b,c'.")
    flags.DEFINE_integer(
        "max_pixels",
        20000,
        "clusters: pixels per layer and batch fed to the k-means fit "
        "(bounds memory and time; assignment always uses every pixel).",
    )
    flags.DEFINE_string(
        "clusters_dir",
        None,
        "dataset: the cluster run of --mode=clusters (default <checkpoint_dir>/clusters).",
    )
    flags.DEFINE_integer("k", None, "dataset: the number of clusters whose labels are used.")
    flags.DEFINE_string(
        "mapping",
        None,
        "dataset: cluster-label JSON written by the annotator (default "
        "<clusters_dir>/annotations_k<k>.json).",
    )
    flags.DEFINE_string(
        "palette",
        "documents",
        "Class-colour JSON: a label-set name / file, or the original "
        "tool's {class: '#RRGGBB'} form.",
    )
    flags.DEFINE_list(
        "coarse_layers",
        None,
        "dataset: layers whose clusters decide the class (default: the "
        "two layers at a quarter of the resolution, e.g. 64 px at 256 px).",
    )
    flags.DEFINE_list(
        "fine_layers",
        None,
        "dataset: layers whose clusters decide the shape (default: the two "
        "full-resolution layers).",
    )
    flags.DEFINE_integer("min_area", 50, "dataset: coarse regions under this many px^2 dropped.")
    flags.DEFINE_enum(
        "overlap_policy",
        "most",
        ["most", "any-first"],
        "dataset: an ink component takes the "
        "class of the coarse region it overlaps most, or the first class (palette order) it "
        "overlaps at all.",
    )
    flags.DEFINE_integer(
        "num_images", 1000, "dataset, osmis, palette: image / mask pairs to write."
    )
    flags.DEFINE_float(
        "val_fraction", 0.1, "dataset, osmis: share of pairs in the validation split."
    )
    _define_synthesis_in_style_rule_flag(flags)
    define_palette_synthesize_flags()


def define_palette_synthesize_flags():
    """synthesize.py --model=palette: --checkpoint_dir / --saved_model is the layout model; it
    also reads --output_dir, --num_images, --val_fraction, --batch_size, --seed, --overwrite."""
    flags.DEFINE_string(
        "spade_checkpoint_dir",
        None,
        "palette: the SPADE run that turns layouts into images (same label set and aspect "
        "ratio as the layouts).",
    )
    flags.DEFINE_string(
        "spade_saved_model",
        None,
        "palette: a SPADE SavedModel (instead of --spade_checkpoint_dir).",
    )
    flags.DEFINE_string(
        "palettes",
        None,
        "palette: class proportions to synthesize: a JSON {class: proportion} (or a list of "
        "them) or a CSV with a header of class names, one palette per row (cycled); default: "
        "drawn from the estimator.",
    )
    flags.DEFINE_string(
        "estimator_path",
        None,
        "palette: the palette estimator to draw from (default <checkpoint_dir>/"
        "palette_estimator.json).",
    )
    flags.DEFINE_integer(
        "level", None, "palette: the layout level to synthesize at (default the run's)."
    )
    flags.DEFINE_integer("demo_steps", 8, "palette demos: frames per interpolation.")
    flags.DEFINE_string(
        "partial_checkpoint_dir",
        None,
        "palette demos: a --stage=partial run (or its export) for the partial-editing sheet "
        "(input | band | edited); without it the sheet is skipped.",
    )
    # Partial editing of given layouts (synthesize.py --model=palette --partial).
    flags.DEFINE_bool(
        "partial",
        False,
        "palette: edit the --layouts with a partial-editing model (--checkpoint_dir: a "
        "--stage=partial run, or --saved_model: its export): the --band columns are "
        "regenerated with the proportions changed by --delta; writes the edited pairs and the "
        "input layouts.",
    )
    flags.DEFINE_string(
        "layouts",
        None,
        "palette --partial: the layouts to edit: a folder of train-id label-map PNGs at the "
        "model's layout size (e.g. a pair folder's masks/) or a JSON list of their paths (or a "
        "pair list, its labels).",
    )
    flags.DEFINE_string(
        "band",
        None,
        "palette --partial: the columns regenerated, x0,x1 (end exclusive), as columns (8,24) "
        "or as fractions of the width (0.25,0.75: values with a '.').",
    )
    flags.DEFINE_string(
        "delta",
        None,
        "palette --partial: the change of class proportions (fractions of the layout), e.g. "
        "vegetation=+0.1,sky=-0.05; the classes not named give or take the rest in proportion "
        "to their share of the band. Default: none (the band keeps its proportions).",
    )


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
        "input",
        None,
        "An image file, a folder (its images, not recursive), a glob pattern "
        "(quoted; ** recurses) or a JSON list of image paths (relative to the list's folder).",
    )
    d.DEFINE_string("output_dir", "outputs/segmented", "Where the PNGs (and metrics) go.")
    d.DEFINE_string(
        "checkpoint_dir", None, "Run directory of train.py (restores its latest checkpoint)."
    )
    d.DEFINE_string(
        "saved_model", None, "An exported SavedModel directory (instead of --checkpoint_dir)."
    )
    d.DEFINE_enum(
        "mode",
        "slide",
        ["slide", "whole"],
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
        "gt_dir",
        None,
        "Ground-truth label maps (8-bit PNG class ids, 255 = ignore), matched "
        "by stem: <stem>.png or <stem>_seg.png. Enables the metrics.",
    )
    d.DEFINE_string(
        "semantic_label_path",
        None,
        "Label set for colours and class names: a built-in name "
        "or a JSON file (default: the model's).",
    )
    d.DEFINE_bool(
        "ignore_dontcare",
        True,
        "With --gt_dir: ignore ground-truth pixels of the label set's "
        "dontcare class (ADE20K 'other') and leave that class out of the means.",
    )
    d.DEFINE_bool("overwrite", False, "Overwrite existing output files.")
    _define_segment_page_flags(d)


def define_evaluate_flags(flag_values=FLAGS):
    """Defines the flags of evaluate.py in `flag_values` (absl's global FLAGS by default)."""
    d = _Definer(flag_values)
    d.DEFINE_enum(
        "mode",
        "synthesis",
        ["synthesis", "synthetic_to_real", "one_shot", "palette", "coco"],
        "synthesis: FID / KID of --synth_dir against --real_dir (and semantic consistency with "
        "--label_dir and --segmenter); synthetic_to_real: train SegFormer on real, synthetic "
        "and real + synthetic data on one budget and compare them on held-out real images; "
        "one_shot: SIFID, LPIPS diversity / distance to train and mIoU of the generated pairs "
        "of --synth_dir against --real_image / --real_mask; palette: FID, GMM log-likelihood, "
        "EMD, Frechet distance of class proportions and KL / JS / MAE to the target palettes; "
        "coco: COCO segm AP / AR of --segmenter on the pairs of --coco_gt.",
    )
    # --mode=synthesis
    d.DEFINE_string("synth_dir", None, "Synthesized images (searched recursively).")
    d.DEFINE_string("real_dir", None, "Real images to compare with (searched recursively).")
    d.DEFINE_string(
        "label_dir",
        None,
        "The label maps the --synth_dir images were synthesized from, "
        "matched by relative path and stem (<stem>.png or <stem>_seg.png).",
    )
    d.DEFINE_string(
        "segmenter",
        None,
        "A segmenter trained on real data for semantic consistency: an "
        "exported SegFormer SavedModel (train.py's <run>/export) or a SegFormer run directory.",
    )
    d.DEFINE_string(
        "inception_weights",
        "imagenet",
        "InceptionV3 weights: imagenet (Keras download), a "
        "local .h5 / .weights.h5 file, or random (smoke tests only; NOT comparable to published "
        "FIDs).",
    )
    d.DEFINE_integer(
        "image_size",
        0,
        "Resize every image to this square size (px) before Inception, e.g. "
        "the synthesis size; 0 keeps each folder's own size (one size per folder).",
    )
    d.DEFINE_integer("batch_size", 16, "Images per Inception / segmenter batch.")
    d.DEFINE_integer("kid_subsets", 100, "Random subsets KID is averaged over.")
    d.DEFINE_integer("kid_subset_size", 1000, "Images per KID subset (fewer if a set is smaller).")
    d.DEFINE_integer("seed", 0, "Seed of the KID subsets (and of random Inception weights).")
    d.DEFINE_string("output", None, "Write the results as JSON to this file.")
    # --mode=synthetic_to_real
    d.DEFINE_string(
        "train_flags",
        "",
        "train.py flags shared by the three SegFormer runs (dataset, preset, "
        '--max_steps, --batch_size, --seed, ...), one string, e.g. "--dataset=scenes '
        '--preset=tiny --max_steps=300".',
    )
    d.DEFINE_string(
        "spade_model",
        None,
        "Exported SPADE SavedModel: synthesize the synthetic training set "
        "from the real training label maps.",
    )
    d.DEFINE_string("synthetic_list", None, "Synthetic training pairs as a JSON pair list.")
    d.DEFINE_string(
        "synthetic_image_dir",
        None,
        "Synthetic training images (with --synthetic_label_dir, matched by stem).",
    )
    d.DEFINE_string("synthetic_label_dir", None, "Label maps of --synthetic_image_dir.")
    d.DEFINE_string(
        "output_dir",
        None,
        "Results and run directories of synthetic_to_real, one_shot and palette (default "
        "outputs/<mode>).",
    )
    d.DEFINE_bool("overwrite", False, "Overwrite existing results (--output, --output_dir).")
    _define_one_shot_palette_evaluate_flags(d)
    _define_coco_evaluate_flags(d)


def _define_one_shot_palette_evaluate_flags(d):
    """evaluate.py --mode=one_shot and --mode=palette (--synth_dir: a synthetic pair folder)."""
    d.DEFINE_string("real_image", None, "one_shot: the one real image the generator learned.")
    d.DEFINE_string("real_mask", None, "one_shot: its mask (8-bit class ids of the label set).")
    d.DEFINE_bool(
        "sifid_all_layers",
        False,
        "one_shot: SIFID also at Inception's second max-pool and mixed7 (images >= 75 px).",
    )
    d.DEFINE_string(
        "lpips_backbone_weights",
        "imagenet",
        "one_shot: LPIPS's VGG16: imagenet (Keras download), a local Keras .h5, a torchvision "
        "VGG16 features .npz / .safetensors (the official LPIPS backbone), or random.",
    )
    d.DEFINE_string(
        "lpips_linear_weights",
        "uniform",
        "one_shot: LPIPS's linear layers: a .npz / .safetensors (lin0..lin4, or the official "
        "vgg.pth keys lin<l>.model.1.weight), or uniform (not comparable to published LPIPS).",
    )
    d.DEFINE_integer("lpips_pairs", 200, "one_shot: most generated pairs LPIPS diversity uses.")
    d.DEFINE_integer(
        "seg_steps",
        200,
        "one_shot: training steps of the SegFormers of the mIoU (other train.py flags in "
        "--train_flags); 0 skips the mIoU.",
    )
    d.DEFINE_integer("sheet_pairs", 8, "one_shot: generated pairs shown in sheet.png.")
    d.DEFINE_integer(
        "gmm_components",
        0,
        "palette: components of the GMM fitted to the real palettes (0: 1..30 by AIC).",
    )


# Flags of evaluate.py each mode reads (with mode, output_dir / overwrite where it writes).
EVALUATE_MODE_FLAGS = {
    "synthesis": (
        "synth_dir", "real_dir", "label_dir", "segmenter", "inception_weights", "image_size",
        "batch_size", "kid_subsets", "kid_subset_size", "seed", "output", "overwrite",
    ),
    "synthetic_to_real": (
        "train_flags", "spade_model", "synthetic_list", "synthetic_image_dir",
        "synthetic_label_dir", "output_dir", "overwrite", "batch_size",
    ),
    "one_shot": (
        "synth_dir", "real_image", "real_mask", "real_dir", "inception_weights",
        "sifid_all_layers", "lpips_backbone_weights", "lpips_linear_weights", "lpips_pairs",
        "seg_steps", "train_flags", "sheet_pairs", "batch_size", "seed", "output_dir",
        "overwrite",
    ),
    "palette": (
        "synth_dir", "real_dir", "inception_weights", "image_size", "batch_size",
        "gmm_components", "seed", "output_dir", "overwrite",
    ),
    "coco": (
        "coco_gt", "segmenter", "image_root", "tile_size", "max_detections", "batch_size",
        "output_dir", "overwrite",
    ),
}  # fmt: skip


def check_evaluate_mode_flags(flag_values=FLAGS):
    """Refuses evaluate.py flags given on the command line that --mode does not read."""
    mode = flag_values.mode
    used = set(EVALUATE_MODE_FLAGS[mode])
    for name in EVALUATE_MODE_FLAGS:
        for flag in EVALUATE_MODE_FLAGS[name]:
            if flag not in used and flag_values[flag].present:
                readers = [m for m, names in EVALUATE_MODE_FLAGS.items() if flag in names]
                raise ConfigError(
                    f"--{flag} is not used by --mode={mode} (only by --mode={' / '.join(readers)})"
                )


def one_shot_segmenter_config(train_flags: str, seg_steps: int, synth_dir: str):
    """(SegFormer config of evaluate.py --mode=one_shot's mIoU, or None when seg_steps is 0,
    the train.py flags it came from). The data fields are placeholders the mode replaces."""
    import shlex

    from evaluation import one_shot

    try:
        train_args = shlex.split(train_flags or "")
    except ValueError as error:
        raise ConfigError(f"--train_flags cannot be split into flags: {error}") from None
    train_args = one_shot.check_train_args(train_args)
    if seg_steps <= 0:
        if train_args:
            raise ConfigError("--train_flags is not used with --seg_steps=0 (no mIoU)")
        return None, train_args
    args = [
        "--model=segformer",
        "--eval_freq=0",
        "--dataset=json",
        f"--train_list={os.path.join(synth_dir or '.', 'train.json')}",
        *train_args,
        f"--max_steps={seg_steps}",
    ]
    try:
        return config_from_args(args), train_args
    except flags.Error as error:  # an unknown or malformed flag inside --train_flags
        raise ConfigError(f"--train_flags: {error}") from None


# ==============================================================================================
# python -m tools.X (and python -m annotator): their flags and the shared entry point
# ==============================================================================================


def run_tool(program, define, body, args=None, *, required=(), value_errors=False):
    """Runs a command of tools/: defines its flags, parses them, calls `body` inside
    user_errors. A bad flag, a missing required one and a user error all print one line
    "<program>: error: ..." and exit with status 2.

    Args:
        program: how the user runs it, e.g. "python -m tools.scenes" (starts error lines).
        define: its define_<tool>_flags(flag_values).
        body: (flag_values, positional args) -> result; the one library call.
        args: None: the command line (sys.argv) through absl.app (--help, --flagfile work).
            A list (the arguments without the program name): run in-process on fresh
            FlagValues, e.g. by tests; the result is returned.
        required: names of flags that must be given.
        value_errors: report any ValueError as a user error (library functions that check
            their arguments with ValueError), as the old argparse commands did.
    """
    if args is None:
        from absl import app

        def main(argv):
            _call_tool(program, body, FLAGS, argv[1:], required, value_errors)  # exit status 0

        define(FLAGS)
        app.run(main, flags_parser=lambda argv: _parse_tool_flags(program, FLAGS, argv))
        return None
    flag_values = flags.FlagValues()
    define(flag_values)
    argv = _parse_tool_flags(program, flag_values, [program, *args])
    return _call_tool(program, body, flag_values, argv[1:], required, value_errors)


def _parse_tool_flags(program, flag_values, argv):
    """Parses argv into flag_values; a flag error exits with status 2 like a user error."""
    return _parse_flags(program, flag_values, argv)


def _call_tool(program, body, flag_values, positional, required, value_errors):
    with user_errors(program):
        missing = [name for name in required if flag_values[name].value is None]
        if missing:
            raise ConfigError(f"--{missing[0]} is required")
        try:
            return body(flag_values, positional)
        except ValueError as error:
            if not value_errors or isinstance(error, UserError):
                raise
            raise ConfigError(str(error)) from None


def reject_positional(positional):
    """Tools without positional arguments refuse them (a typo such as `--k 3 4`)."""
    if positional:
        raise ConfigError(f"unexpected arguments: {' '.join(positional)}")


def define_export_spade_flags(flag_values=FLAGS):
    """Flags of python -m tools.export_spade."""
    d = _Definer(flag_values)
    d.DEFINE_string("checkpoint_dir", None, "Run directory of train.py (required).")
    d.DEFINE_string("output", None, "SavedModel folder (default <checkpoint_dir>/export).")


def _define_import_flags(d, what):
    """Flags shared by the python -m tools.import_* commands."""
    d.DEFINE_string("checkpoint", None, f"{what} (required).")
    d.DEFINE_string("output_dir", None, "Run directory to write (required).")
    d.DEFINE_bool("overwrite", False, "Replace an existing --output_dir.")


def define_import_segformer_flags(flag_values=FLAGS):
    """Flags of python -m tools.import_segformer."""
    d = _Definer(flag_values)
    _define_import_flags(
        d,
        "Hugging Face SegFormer / MiT model folder (config.json + model.safetensors or "
        "pytorch_model.bin), or the weight file",
    )
    d.DEFINE_string(
        "dataset",
        None,
        "The run's --dataset (default: ade20k for 150 classes, cityscapes for 19, else folders "
        "with the checkpoint's id2label as label set).",
    )
    d.DEFINE_string("data_root", None, "The run's --data_root (fine-tuning / evaluation data).")
    d.DEFINE_string(
        "image_dir", None, "The run's --image_dir (folders; default <data_root>/images)."
    )
    d.DEFINE_string(
        "label_dir", None, "The run's --label_dir (folders; default <data_root>/labels)."
    )
    d.DEFINE_integer(
        "num_classes", None, "Classes of the fresh decode head of an encoder-only mit-b* file."
    )
    d.DEFINE_list(
        "set",
        [],
        "Other settings of the run, name=value,... (train.py flags of SegFormer, e.g. "
        "crop_size=512,batch_size=8): what train.py is given when it fine-tunes the run.",
    )


def define_import_stylegan2_flags(flag_values=FLAGS):
    """Flags of python -m tools.import_stylegan2."""
    d = _Definer(flag_values)
    _define_import_flags(d, "rosinality stylegan2-pytorch checkpoint (.pt with g, d, g_ema)")
    d.DEFINE_list(
        "set",
        [],
        "Other settings of the run, name=value,... (train.py flags of StyleGAN2, e.g. "
        "dataset=images,image_dir=pages): what train.py is given when it fine-tunes the run.",
    )


def define_import_spade_flags(flag_values=FLAGS):
    """Flags of python -m tools.import_spade."""
    d = _Definer(flag_values)
    _define_import_flags(
        d,
        "NVlabs/SPADE checkpoint folder (latest_net_G.pth, optional latest_net_E.pth / "
        "latest_net_D.pth, opt.txt / opt.pkl), or its *_net_G.pth file",
    )
    d.DEFINE_enum(
        "num_upsampling_layers",
        None,
        ["normal", "more", "most"],
        "NVlabs' --num_upsampling_layers of the checkpoint, where its folder has no opt.txt / "
        "opt.pkl (default normal, as the released models).",
    )
    d.DEFINE_integer(
        "crop_size",
        None,
        "NVlabs' --crop_size (the image WIDTH) of the checkpoint, where its folder has no "
        "opt.txt / opt.pkl (default 256); the run's crop_size is the height.",
    )
    d.DEFINE_float(
        "aspect_ratio",
        None,
        "NVlabs' --aspect_ratio (width / height) of the checkpoint, where its folder has no "
        "opt.txt / opt.pkl (default 1.0).",
    )
    d.DEFINE_list(
        "set",
        [],
        "Other settings of the run, name=value,... (train.py flags of SPADE, e.g. "
        "data_root=datasets/ade20k,batch_size=8): what train.py is given when it fine-tunes "
        "the run.",
    )


def define_label_clusters_flags(flag_values=FLAGS):
    """Flags of python -m tools.label_clusters."""
    d = _Definer(flag_values)
    d.DEFINE_string("clusters_dir", None, "A run of synthesize.py --mode=clusters (required).")
    d.DEFINE_integer("k", None, "The clustering to label (required).")
    d.DEFINE_string(
        "output", None, "Mapping JSON to write (default <clusters_dir>/annotations_k<k>.json)."
    )
    d.DEFINE_bool("overwrite", False, "Replace an existing mapping.")


def define_crops_flags(flag_values=FLAGS):
    """Flags of python -m tools.crops."""
    d = _Definer(flag_values)
    d.DEFINE_string("input_dir", None, "Folder of page images (searched recursively).")
    d.DEFINE_list(
        "inputs",
        None,
        "Page image files, comma-separated (instead of --input_dir); file "
        "names after the flags are added to them, so `--inputs pages/*.png` works.",
    )
    d.DEFINE_string(
        "output_dir",
        None,
        "Folder for crops/, train.json, val.json (must be empty or new; required).",
    )
    d.DEFINE_integer("num_crops", None, "Number of tiles (required).")
    d.DEFINE_integer("crop_size", 256, "Tile side in pixels.")
    d.DEFINE_integer("max_side", 3000, "Pages are first shrunk to this longest side.")
    d.DEFINE_integer("min_side", 1000, "Downscaling keeps the longest side at least this long.")
    d.DEFINE_list("downscale", ["1.0", "4.0"], "LOW,HIGH: range of the random downscale factor.")
    d.DEFINE_float("val_fraction", 0.1, "Share of tiles listed in val.json.")
    d.DEFINE_integer("seed", 0, "Seed of positions, scales, split.")
    d.DEFINE_string(
        "masks_dir",
        None,
        "Optional folder of class-id masks named like the pages; their "
        "tiles go to masks/ and train_pairs.json / val_pairs.json.",
    )
    d.DEFINE_bool(
        "overwrite", False, "Replace the tiles and lists of an earlier run in --output_dir."
    )
    d.DEFINE_bool("quiet", False, "No progress counter.")


def define_documents_flags(flag_values=FLAGS):
    """Flags of python -m tools.documents."""
    from datasets.documents import DEFAULT_HEIGHT, DEFAULT_WIDTH

    d = _Definer(flag_values)
    d.DEFINE_string("root", None, "Dataset folder (created; required).")
    d.DEFINE_integer("num_train", 40, "Training pages.")
    d.DEFINE_integer("num_val", 10, "Validation pages.")
    d.DEFINE_integer("height", DEFAULT_HEIGHT, "Page height (px).")
    d.DEFINE_integer("width", DEFAULT_WIDTH, "Page width (px).")
    d.DEFINE_integer("seed", 0, "Dataset seed.")


def define_scenes_flags(flag_values=FLAGS):
    """Flags of python -m tools.scenes."""
    d = _Definer(flag_values)
    d.DEFINE_string("out", None, "Parent folder of ADEChallengeData2016 (required).")
    d.DEFINE_integer("num_train", 300, "Training scenes.")
    d.DEFINE_integer("num_val", 30, "Validation scenes.")
    d.DEFINE_integer("size", 256, "Square scene side in pixels.")
    d.DEFINE_integer("seed", 0, "Dataset seed.")


def define_streets_flags(flag_values=FLAGS):
    """Flags of python -m tools.streets."""
    d = _Definer(flag_values)
    d.DEFINE_string("out", None, "Dataset folder: leftImg8bit/ and gtFine/ go inside (required).")
    d.DEFINE_integer("num_train", 300, "Training streets.")
    d.DEFINE_integer("num_val", 30, "Validation streets.")
    d.DEFINE_integer("height", 128, "Image height in pixels.")
    d.DEFINE_integer("width", 256, "Image width in pixels (Cityscapes is 1:2).")
    d.DEFINE_integer("seed", 0, "Dataset seed.")


def define_class_weights_flags(flag_values=FLAGS):
    """Flags of python -m tools.class_weights."""
    from datasets.pairs import SEG_DATASETS, SPLITS

    d = _Definer(flag_values)
    d.DEFINE_enum("dataset", None, list(SEG_DATASETS), "Segmentation dataset (required).")
    d.DEFINE_enum("split", "training", list(SPLITS), "Split to count.")
    d.DEFINE_string("data_root", "data", "Folder of facesynthetics, cityscapes or ade20k.")
    d.DEFINE_string("image_dir", None, "Training images of --dataset=folders.")
    d.DEFINE_string("label_dir", None, "Training label maps of --dataset=folders.")
    d.DEFINE_string("val_image_dir", None, "Validation images of --dataset=folders.")
    d.DEFINE_string("val_label_dir", None, "Validation label maps of --dataset=folders.")
    d.DEFINE_string("train_list", None, "JSON pair list of --dataset=json (training).")
    d.DEFINE_string("val_list", None, "JSON pair list of --dataset=json (validation).")
    d.DEFINE_integer("split_seed", 0, "Seed of the FaceSynthetics 90/10 split of a single folder.")
    d.DEFINE_integer("num_classes", None, "Number of classes (required for folders and json).")
    d.DEFINE_string("output", None, "JSON file to write (required).")
    d.DEFINE_bool("overwrite", False, "Replace an existing --output.")
    d.DEFINE_bool("progress", True, "Show a progress bar.")


def define_annotator_flags(flag_values=FLAGS):
    """Flags of python -m annotator."""
    d = _Definer(flag_values)
    d.DEFINE_string("clusters_dir", None, "Cluster run directory (required).")
    d.DEFINE_integer("k", None, "Clusters per layer to annotate (required).")
    d.DEFINE_string("palette", "documents", "Built-in label set name or class-colour JSON path.")
    d.DEFINE_string(
        "mapping", None, "Mapping JSON (default <clusters_dir>/annotations_k{k:02d}.json)."
    )
    d.DEFINE_integer("display_size", 256, "Width and height in pixels of every layer image.")
    d.DEFINE_string(
        "host", "127.0.0.1", "Address to bind; keep the loopback default unless you must share."
    )
    d.DEFINE_integer("port", 5000, "Port to listen on.")


def parse_train_flags_string(train_flags):
    """evaluate.py's --train_flags string -> (the shared SegFormer config, the train.py flags).

    The string is split as a shell would; flags the experiment sets itself, and unknown or
    malformed train.py flags, are ConfigErrors naming --train_flags.
    """
    import shlex

    from evaluation import synthetic_to_real as s2r

    try:
        train_args = shlex.split(train_flags or "")
    except ValueError as error:
        raise ConfigError(f"--train_flags cannot be split into flags: {error}") from None
    train_args = s2r.check_train_args(train_args)
    try:
        return synthetic_to_real_config(train_args), train_args
    except flags.Error as error:  # an unknown or malformed flag inside --train_flags
        raise ConfigError(f"--train_flags: {error}") from None


def _define_spade_aspect_train_flags(d):
    """Non-square SPADE: an aspect ratio, or the TF port's --img_height / --img_width."""
    d.DEFINE_float(
        "aspect_ratio",
        None,
        "Width / height of the crops and synthesized images (preset; 1.0, Cityscapes 2.0); "
        "--crop_size / --load_size are the heights.",
    )
    d.DEFINE_integer(
        "img_height",
        None,
        "With --img_width (the SPADE TF port's names): the synthesis size; sets --crop_size "
        "to the height and --aspect_ratio to width / height.",
    )
    d.DEFINE_integer("img_width", None, "With --img_height: the synthesis width (px).")


def _image_size_flags(given):
    """--img_height / --img_width translated into crop_size and aspect_ratio; both or neither,
    and a contradiction with --crop_size / --aspect_ratio is a ConfigError naming the flags.

    With a smaller --crop_size as well, they mean what the SPADE TF port means by all three:
    images are resized to img_height x img_width (our load_size and aspect_ratio) and cropped
    to crop_size (the height), e.g. the port's defaults 286 / 286 / 256."""
    given = dict(given)
    height, width = given.pop("img_height", None), given.pop("img_width", None)
    if height is None and width is None:
        return given
    if height is None or width is None:
        missing = "--img_width" if width is None else "--img_height"
        raise ConfigError(f"--img_height and --img_width go together: {missing} is missing")
    if height <= 0 or width <= 0:
        raise ConfigError(f"--img_height={height} and --img_width={width} must be positive")
    aspect_ratio = width / height
    if "crop_size" in given and given["crop_size"] != height:
        crop = given["crop_size"]
        if crop > height:
            raise ConfigError(
                f"--crop_size={crop} is larger than --img_height={height} (the height images "
                "are resized to before the crop)"
            )
        if given.get("load_size", height) != height:
            raise ConfigError(
                f"--load_size={given['load_size']} contradicts --img_height={height} with "
                f"--crop_size={crop} (both the height images are resized to); give one of them"
            )
        given["load_size"] = height  # the port's resize; the crop keeps the aspect ratio
    if "aspect_ratio" in given and abs(given["aspect_ratio"] - aspect_ratio) > 1e-9:
        raise ConfigError(
            f"--aspect_ratio={given['aspect_ratio']} contradicts --img_height={height} / "
            f"--img_width={width} (aspect ratio {aspect_ratio:g}); give one of them"
        )
    given["crop_size"] = given.get("crop_size", height)
    given["aspect_ratio"] = aspect_ratio
    return given


def _define_palette_train_flags(d):
    """Flags of --model=palette (Semantic Palette layouts); defaults come from the preset."""
    d.DEFINE_enum(
        "stage",
        None,
        ["layout", "partial", "e2e"],
        "Palette: layout (palette -> layout), partial (partial editing of a band of columns) or "
        "e2e (end-to-end fine-tuning of --layout_run and --image_run) (preset: layout).",
    )
    d.DEFINE_integer("start_size", None, "Palette: height of the level-0 layouts, px (4).")
    d.DEFINE_integer("num_levels", None, "Palette: levels of the progressive networks (preset).")
    d.DEFINE_integer(
        "max_level",
        None,
        "Palette: train up to this level, 0-based, i.e. stop at that resolution (default the "
        "last).",
    )
    d.DEFINE_integer(
        "channel_base", None, "Palette: level k has min(max_channels, channel_base/2**k) channels."
    )
    d.DEFINE_integer("max_channels", None, "Palette: the widest level's channels (preset: 512).")
    d.DEFINE_bool("feedback", None, "Palette: feed each level's layout back into the next block.")
    d.DEFINE_integer("mbstd_group_size", None, "Palette: critic minibatch-stddev group size (4).")
    d.DEFINE_integer("fade_steps", None, "Palette: steps of each new level's fade-in (preset).")
    d.DEFINE_integer("stable_steps", None, "Palette: steps of each level after its fade-in.")
    d.DEFINE_float("lambda_gp", None, "Palette: WGAN-GP gradient-penalty weight (10).")
    d.DEFINE_float("lambda_drift", None, "Palette: drift penalty on real critic scores (0.001).")
    d.DEFINE_float("lambda_entropy", None, "Palette: pixel-entropy loss weight (preset).")
    d.DEFINE_float("lambda_spread", None, "Palette: spread loss weight (preset).")
    d.DEFINE_float(
        "lambda_kl", None, "Palette: KL(target || mean soft layout) weight (preset: 0, off)."
    )
    d.DEFINE_float("blur_sigma", None, "Palette: Gaussian blur of real layouts, px (preset).")
    d.DEFINE_integer(
        "max_components", None, "Palette: estimator GMMs of 1..this many components (30)."
    )
    d.DEFINE_string(
        "estimator_path",
        None,
        "Palette: a fitted palette estimator (JSON / .npz) to use instead of fitting one.",
    )
    d.DEFINE_float(
        "band_min_width",
        None,
        "Palette --stage=partial: narrowest regenerated band of columns, a fraction of the "
        "layout width (0.25). The SPADE blocks' width is --spade_hidden.",
    )
    d.DEFINE_float(
        "band_max_width",
        None,
        "Palette --stage=partial: widest regenerated band, a fraction of the width (0.5).",
    )
    d.DEFINE_string(
        "layout_run",
        None,
        "Palette --stage=e2e: run directory of a trained --stage=layout run (at its last level).",
    )
    d.DEFINE_string(
        "image_run",
        None,
        "Palette --stage=e2e: run directory of a trained --model=spade run (no VAE) at the "
        "layout size and label set.",
    )
    d.DEFINE_float(
        "lambda_e2e",
        None,
        "Palette --stage=e2e: weight of the unconditional image discriminator's hinge loss on "
        "images made from generated layouts (0.01).",
    )


def _define_osmis_train_flags(d):
    """Flags of --model=osmis (OSMIS with a mask, SIV-GAN without). It also reads --image_dir
    (video frames), --z_dim, --lr, --beta1, --beta2, --batch_size, --max_steps."""
    d.DEFINE_string(
        "image",
        None,
        "osmis: the one training image, or a video file (its frames); default: one built-in "
        "scene with its label map.",
    )
    d.DEFINE_string(
        "mask",
        None,
        "osmis: the mask of --image (8-bit class ids, or a colour PNG with --mask_colours); "
        "without one, SIV-GAN trains on the image alone.",
    )
    d.DEFINE_string(
        "mask_colours",
        None,
        "osmis: class-colour JSON (a label set file, or {name: '#RRGGBB'}) naming the classes "
        "of --mask or mapping its colours to classes.",
    )
    d.DEFINE_integer(
        "max_size",
        None,
        "osmis: longest side of the training image in px; with the aspect ratio it gives the "
        "output size and the generator blocks (preset: 330).",
    )
    d.DEFINE_integer(
        "num_blocks", None, "osmis: generator blocks, 3..9 (preset: 0 = chosen from the image)."
    )
    d.DEFINE_float(
        "aug_prob",
        None,
        "osmis: probability of each differentiable augmentation per sample (preset: 0.7).",
    )
    d.DEFINE_bool(
        "aug_colour",
        None,
        "osmis: the differentiable augmentation also changes the image's colour (preset osmis: "
        "false, geometric only as in the reference; tiny: true).",
    )
    d.DEFINE_float(
        "lambda_diversity", None, "osmis: weight of the diversity regulariser (preset: 0.15)."
    )
    d.DEFINE_float("ema_decay", None, "osmis: generator EMA decay per step (preset: 0.9999).")
    d.DEFINE_enum("gan_loss", None, ["bce", "hinge"], "osmis: adversarial loss (preset: bce).")


def _define_segment_page_flags(d):
    """segment.py: shrinking large scans, and PAGE XML of the text lines (Synthesis in Style's
    segment_image.py: --max-image-size, --merge-mode, --max-diff-percentage)."""
    d.DEFINE_integer(
        "max_image_size",
        3000,
        "Shrink an image whose longer side exceeds this many px to it before tiling (aspect "
        "kept); outputs are enlarged back to the original size. 0 = never shrink.",
    )
    d.DEFINE_bool(
        "page_xml",
        False,
        "Also write <stem>.xml (PAGE XML, 2019 schema: a TextRegion per text class with a "
        "TextLine per line polygon) and <stem>_contours.png (the lines drawn on the colours).",
    )
    d.DEFINE_enum(
        "merge_mode",
        "none",
        ["none", "min_area_bbox", "convex_hull"],
        "page_xml: a line's components become one polygon: none (a TextLine per component), "
        "min_area_bbox (the minimum-area rotated rectangle), convex_hull.",
    )
    d.DEFINE_float(
        "max_diff_percentage",
        0.05,
        "page_xml: components at most this fraction of the image width apart join one line.",
    )
    d.DEFINE_float(
        "min_confidence", 0.7, "page_xml: text pixels need at least this class probability."
    )
    d.DEFINE_list(
        "text_classes",
        None,
        "page_xml: classes traced into lines (default: those whose name holds 'text', "
        "e.g. printed_text, handwritten_text).",
    )


def _define_coco_evaluate_flags(d):
    """evaluate.py --mode=coco: COCO segm AP / AR of a segmenter on a COCO ground truth (the
    coco_gt_val.json of a synthetic dataset), with pycocotools."""
    d.DEFINE_string(
        "coco_gt",
        None,
        "coco: COCO instance ground truth (e.g. <dataset>/coco_gt_val.json of "
        "synthesize.py --mode=dataset).",
    )
    d.DEFINE_string(
        "image_root",
        None,
        "coco: folder the ground truth's file_name paths start at (default: its folder).",
    )
    d.DEFINE_integer(
        "tile_size",
        0,
        "coco: sliding-window tile side (px, a multiple of 32); 0 = each image in one pass.",
    )
    d.DEFINE_integer(
        "max_detections",
        100,
        "coco: detections per image COCOeval keeps (its maxDets; a page of text can need more).",
    )


def _define_synthesis_in_style_rule_flag(definer):
    """synthesize.py --mode=dataset: the rule that turns cluster labels into masks."""
    definer.DEFINE_string(
        "mask_rule",
        "coarse_fine",
        "dataset: the mask rule (models/synthesis_in_style/labels.py MASK_RULES): coarse_fine "
        "(the paper's: coarse layers decide the class, fine layers the shape) or fine_only "
        "(the fine layers decide both).",
    )


def _define_segformer_train_flags(d):
    """SegFormer's schedule, clipping and augmentation flags (defaults from the preset;
    segformer_facesynthetics sets the FaceSynthetics system's values)."""
    d.DEFINE_float(
        "pct_start",
        None,
        "segformer --lr_schedule=one_cycle: fraction of the steps spent rising from lr/25 to "
        "lr (preset: 0.3; FaceSynthetics 0.125).",
    )
    d.DEFINE_float(
        "clip_grad_value",
        None,
        "Element-wise gradient clipping to [-v, v], 0 = off (preset; FaceSynthetics 1.0).",
    )
    d.DEFINE_float("scale_min", None, "segformer: smallest random resize ratio (preset: 0.5).")
    d.DEFINE_float("scale_max", None, "segformer: largest random resize ratio (preset: 2.0).")
    d.DEFINE_bool(
        "photometric", None, "segformer: mmsegmentation's photometric distortion (preset)."
    )
    # The FaceSynthetics system's albumentations (datasets/augmentations.py). The three
    # distortions are exclusive: their probabilities sum to at most 1.
    for name, what in (
        ("elastic_prob", "an elastic distortion"),
        ("grid_distortion_prob", "a grid distortion"),
        ("optical_distortion_prob", "an optical (lens) distortion"),
        ("clahe_prob", "CLAHE on the luminance"),
        ("brightness_contrast_prob", "a brightness-contrast change"),
        ("gamma_prob", "a random gamma"),
    ):
        d.DEFINE_float(name, None, f"segformer: probability of {what} per sample (preset).")


# ==============================================================================================
# The SPADE TF port's flags (docs/coming_from.md): train.py and test_one.py
# ==============================================================================================

# The flags that choose where data comes from; given without --dataset they select the source
# that reads them (--image_dir with --label_dir: folders).
_SOURCE_FLAGS = (
    "image_dir",
    "label_dir",
    "val_image_dir",
    "val_label_dir",
    "train_list",
    "val_list",
)


def _define_spade_port_train_flags(d):
    """train.py flags of the SPADE TF port that had no counterpart here."""
    d.DEFINE_float(
        "prob_dataset",
        1.0,
        "Fraction of the training pairs used, in (0, 1] (the SPADE TF port's flag): a fixed "
        "random subset, the same in every run; validation pairs are all kept.",
    )
    d.DEFINE_enum(
        "sample_files",
        None,
        ["grid", "separate", "both"],
        "spade: samples written every --save_img_freq steps: grid (rows of label | real | "
        "synthesized, the default), separate (the SPADE TF port's PNGs per sample: "
        "step_<step>_<k>_real_image / _segmentation_map / _synthesized_image.png) or both.",
    )
    from absl import logging  # noqa: F401  (defines absl's --log_dir in the global FLAGS)

    flag_values = d._flag_values
    if "log_dir" not in flag_values:  # fresh FlagValues (config_from_args)
        d.DEFINE_string("log_dir", None, _LOG_DIR_HELP)
    else:  # absl's: train.py reads it as the port does
        flag_values["log_dir"].help = _LOG_DIR_HELP


_LOG_DIR_HELP = (
    "train.py: the TensorBoard directory, as in the SPADE TF port (the same as "
    "--tensorboard_dir). absl defines --log_dir for its log files, which our scripts never "
    "write (they log to stderr), so train.py reads it as the port does."
)


def _log_dir_flag(flag_values, given):
    """The port's --log_dir (absl's flag in the global FLAGS) as --tensorboard_dir."""
    if "log_dir" not in flag_values or not flag_values["log_dir"].present:
        return given
    log_dir = flag_values["log_dir"].value
    if not log_dir:
        raise ConfigError("--log_dir is empty; give the TensorBoard directory")
    if given.get("tensorboard_dir", log_dir) != log_dir:
        raise ConfigError(
            f"--log_dir={log_dir} and --tensorboard_dir={given['tensorboard_dir']} both name "
            "the TensorBoard directory; give one of them"
        )
    return {**given, "tensorboard_dir": log_dir}


def _data_source_flags(base, given):
    """`given` with the data source the flags imply: without --dataset, source flags that the
    preset's source does not read pick the first source that reads them and validates (spade:
    --image_dir / --label_dir -> folders; stylegan2: --image_dir -> images); and a family that
    discovers label values (spade) gets semantic_label_path=discover for folders without a
    label set (unless the preset chose one)."""
    if not isinstance(base, DataConfig):
        return given
    given = dict(given)
    source = {name for name in _SOURCE_FLAGS if name in given}
    if "dataset" not in given and source and not source <= base.data_fields_read():
        for dataset in DATASETS:
            if source <= set(SOURCE_FIELDS[dataset]):
                try:
                    base.replace(**given, dataset=dataset)
                except ConfigError:
                    continue
                given["dataset"] = dataset
                break
    class_default = type(base).__dataclass_fields__["semantic_label_path"].default
    if (
        type(base).discovers_label_values
        and given.get("dataset", base.dataset) == "folders"
        and "semantic_label_path" not in given
        and base.semantic_label_path == class_default
    ):
        given["semantic_label_path"] = DISCOVER
    return given


def _check_data_flags_read(config, given):
    """Refuses data flags given on the command line that the config's source does not read."""
    if not isinstance(config, DataConfig):
        return
    read = config.data_fields_read()
    unread = sorted(name for name in given if name in DataConfig.field_names() and name not in read)
    if not unread:
        return
    name = unread[0]
    readers = [d for d in DATASETS if _reads_source(config, d) and name in _fields_read(config, d)]
    others = f" (nor {', '.join('--' + n for n in unread[1:])})" if unread[1:] else ""
    if not readers:
        raise ConfigError(
            f"--{name} is not read by --dataset={config.dataset}{others}, nor by any other "
            f"source of --model={config.model}; leave it out"
        )
    raise ConfigError(
        f"--{name} is not read by --dataset={config.dataset}{others}: it is read by "
        f"--dataset={' / '.join(readers)}; give that --dataset, or leave --{name} out"
    )


def _fields_read(config, dataset):
    """The data fields `config` would read with `dataset` (an unvalidated copy: the other flags
    that source needs may be missing)."""
    other = copy.copy(config)
    object.__setattr__(other, "dataset", dataset)
    return other.data_fields_read()


def _reads_source(config, dataset):
    """Whether the config's family reads `dataset` at all (other flags may be missing)."""
    choices = type(config).__dataclass_fields__["dataset"].metadata.get("choices")
    if choices is not None and dataset not in choices:
        return False
    try:
        config.replace(dataset=dataset)
    except ConfigError as error:
        return "model" not in error.fields  # the family refuses the source itself
    return True


def _define_test_one_port_flags():
    """test_one.py flags of the SPADE TF port: the run knows them, so they are checked."""
    flags.DEFINE_bool(
        "use_vae",
        None,
        "The SPADE TF port's flag: checked against the run (it knows whether it has an "
        "encoder); a contradiction is an error.",
    )
    flags.DEFINE_string(
        "semantic_label_path",
        None,
        "The run's label set (a name, JSON or the port's .txt of label values): checked "
        "against the run; label maps are read with the run's own label set.",
    )
    flags.DEFINE_integer(
        "img_height", None, "Synthesis height in px (the port's flag): checked against the run."
    )
    flags.DEFINE_integer(
        "img_width", None, "Synthesis width in px (the port's flag): checked against the run."
    )
    flags.DEFINE_integer("crop_size", None, "The run's crop height: checked against the run.")
    flags.DEFINE_enum(
        "num_upsampling_layers",
        None,
        ["normal", "more", "most"],
        "The port's flag: checked against the run (--checkpoint_dir only).",
    )
    flags.DEFINE_integer(
        "num_generator_filters",
        None,
        "The port's flag (our --ngf): checked against the run (--checkpoint_dir only).",
    )
    flags.DEFINE_integer(
        "num_encoder_filters",
        None,
        "The port's flag (our --ndf): checked against the run (--checkpoint_dir only).",
    )
    flags.DEFINE_bool(
        "port_names",
        False,
        "Write the SPADE TF port's file names: <stem>_synthesized.png, plus the label map "
        "resized to the run's size and the style image at that size, under their own names.",
    )


def given_run_flags(flag_values=FLAGS):
    """{name: value} of the run-describing test_one.py flags given on the command line."""
    from models.spade.inference import RUN_FLAGS

    return {name: flag_values[name].value for name in RUN_FLAGS if flag_values[name].present}
