"""The one-shot input of an OSMIS run and the configuration chosen from it.

Inputs (models/osmis/config.py):
    --image=I --mask=M      one image and its mask (OSMIS): M holds 8-bit class ids, or colours
                            mapped by a class-colour JSON (--mask_colours)
    --image=I               one image without a mask (SIV-GAN), or a video file whose frames
                            Pillow (GIF, WebP, TIFF) or imageio-ffmpeg (mp4, avi, ...) reads
    --image_dir=D           the frames of a video, without masks (SIV-GAN)
    (none)                  one built-in procedural scene with its label map (datasets.scenes)

The class ids present in the mask are renumbered 0..K-1 in increasing order (class 0, the
smallest id, plays the background of the layout feature augmentation); `class_ids` keeps the
original id of each class, and synthesized masks are written with those original ids.

The configuration rule (`choose_layout`): the image is scaled so that its longer side is at most
--max_size; the generator gets the fewest blocks B >= 3 for which both sides divided by
2 ** (B - 1) round to 3-7 px (the noise map); when no B gives that (elongated images), the fewest
B whose longer side is at most 7 px, as the reference does. The output is the noise map times
2 ** (B - 1). An 854 x 480 image with max size 330
becomes 192 x 320 with 7 blocks and a 3 x 5 noise map, as in the reference. The discriminator's
blocks follow the reference's table (7 generator blocks: 7 discriminator blocks, 3 of them
low-level), capped so that the layout branch never goes below 1 px.
"""

import dataclasses
import json
import math
import os

import numpy as np
from PIL import Image, ImageSequence

from core.errors import UserError
from core.io import IMAGE_EXTENSIONS, InputError, InputNotFoundError, find_files
from semantic_labels import LabelSet, LabelSetError, load_label_set

NOISE_RANGE = (3, 7)
MIN_BLOCKS, MAX_BLOCKS = 3, 9
# Generator blocks -> (discriminator blocks, of which low-level), the reference's table,
# extended to the 3 and 4 blocks of small images.
_D_BLOCKS = {3: (4, 2), 4: (5, 2), 5: (6, 2), 6: (7, 3), 7: (7, 3), 8: (7, 4), 9: (8, 4)}
INPUT_RECORD = "osmis_input.json"  # in the run directory
VIDEO_EXTENSIONS = (".gif", ".webp", ".tif", ".tiff", ".mp4", ".avi", ".mov", ".mkv")


class OneShotInputError(InputError):
    """The one-shot input cannot be used; the message names the file or flag."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """The architecture chosen from the input.

    Attributes:
        height, width: the training (and output) image size, px.
        noise_shape: (h0, w0), the generator's noise map.
        num_blocks: generator blocks (height = h0 * 2 ** (num_blocks - 1)).
        num_blocks_d: discriminator blocks; num_blocks_d0 of them low-level.
    """

    height: int
    width: int
    noise_shape: tuple
    num_blocks: int
    num_blocks_d: int
    num_blocks_d0: int

    def to_dict(self):
        return {**dataclasses.asdict(self), "noise_shape": list(self.noise_shape)}

    @classmethod
    def from_dict(cls, values):
        return cls(**{**values, "noise_shape": tuple(values["noise_shape"])})

    def describe(self):
        h0, w0 = self.noise_shape
        return (
            f"output {self.height} x {self.width} px, {self.num_blocks} generator blocks (noise "
            f"map {h0} x {w0}), {self.num_blocks_d} discriminator blocks ({self.num_blocks_d0} "
            "low-level)"
        )


def bounded_size(height, width, max_size):
    """(h, w) scaled so that the longer side is at most max_size (never enlarged; floats)."""
    scale = min(1.0, max_size / max(height, width))
    return height * scale, width * scale


def _round(x):
    return int(math.floor(x + 0.5))


def discriminator_blocks(num_blocks, height, width):
    """(num_blocks_d, num_blocks_d0) for a generator of num_blocks and an image size."""
    total, low = _D_BLOCKS[num_blocks]
    shorter = min(height, width)
    while low > 1 and shorter // 2**low < 2:
        low -= 1
    layout_blocks = max(1, min(total - low, int(math.log2(max(shorter // 2**low, 1)))))
    return low + layout_blocks, low


def _noise_in_range(h, w, num_blocks):
    scale = 2 ** (num_blocks - 1)
    return all(NOISE_RANGE[0] <= _round(side / scale) <= NOISE_RANGE[1] for side in (h, w))


def _auto_blocks(h, w):
    """The fewest blocks whose noise map is 3-7 px per side; when no block count gives that
    (elongated images), the fewest whose longer side is at most 7 px (the reference's choice)."""
    for num_blocks in range(MIN_BLOCKS, MAX_BLOCKS + 1):
        if _noise_in_range(h, w, num_blocks):
            return num_blocks
    num_blocks = MIN_BLOCKS
    while max(h, w) / 2 ** (num_blocks - 1) > NOISE_RANGE[1] and num_blocks < MAX_BLOCKS:
        num_blocks += 1
    return num_blocks


def choose_layout(height, width, max_size, num_blocks=0, where="the image"):
    """The Layout of an image of height x width px (see the module docstring).

    Args:
        height, width: the input's size.
        max_size: bound on the longer side.
        num_blocks: 0 chooses the blocks; otherwise the generator's blocks (3..9).
        where: how errors name the input (a file or flag).

    Raises:
        OneShotInputError: the image is too small for 3 blocks, or too elongated.
    """
    h, w = bounded_size(height, width, max_size)
    longer = max(h, w)
    if longer / 2 ** (MIN_BLOCKS - 1) < NOISE_RANGE[0]:
        raise OneShotInputError(
            f"{where} is {height} x {width} px: too small for {MIN_BLOCKS} generator blocks "
            f"(the longer side must be at least {NOISE_RANGE[0] * 2 ** (MIN_BLOCKS - 1)} px after "
            f"--max_size={max_size})"
        )
    if not num_blocks:
        num_blocks = _auto_blocks(h, w)
    scale = 2 ** (num_blocks - 1)
    noise = (_round(h / scale), _round(w / scale))
    if min(noise) < 1:
        raise OneShotInputError(
            f"{where} is {height} x {width} px: with {num_blocks} generator blocks its noise map "
            f"would be {noise[0]} x {noise[1]} px; use fewer --num_blocks or a larger --max_size"
        )
    out_h, out_w = noise[0] * scale, noise[1] * scale
    blocks_d, blocks_d0 = discriminator_blocks(num_blocks, out_h, out_w)
    return Layout(out_h, out_w, noise, num_blocks, blocks_d, blocks_d0)


# === Reading the input =========================================================================


@dataclasses.dataclass
class OneShotInput:
    """The training data of one run, in memory.

    Attributes:
        frames: [F, H, W, 3] uint8 at the layout's size.
        masks: [F, H, W] uint8 contiguous class ids 0..K-1, or None (SIV-GAN).
        class_ids: the original id of each class (K entries; empty without masks).
        label_set: a LabelSet naming and colouring the original ids (None without masks).
        layout: the chosen Layout.
        source: one line describing the input (for logs and the run directory).
        files: the input files (for the training log's count).
    """

    frames: np.ndarray
    masks: np.ndarray | None
    class_ids: tuple
    label_set: LabelSet | None
    layout: Layout
    source: str
    files: list

    @property
    def num_classes(self):
        return len(self.class_ids)

    def record(self):
        """What the run directory keeps (osmis_input.json): enough to synthesize without the
        input files."""
        label_set = None
        if self.label_set is not None:
            label_set = {
                "name": self.label_set.name,
                "names": list(self.label_set.names),
                "colors": self.label_set.colors.tolist(),
            }
        return {
            "source": self.source,
            "layout": self.layout.to_dict(),
            "class_ids": list(self.class_ids),
            "label_set": label_set,
            "frames": int(self.frames.shape[0]),
        }


def label_set_from_record(record):
    """The LabelSet stored by OneShotInput.record() (None without masks)."""
    spec = record.get("label_set")
    if not spec:
        return None
    names = tuple(spec["names"])
    return LabelSet(
        name=spec["name"],
        names=names,
        colors=np.array(spec["colors"], np.uint8),
        used_ids=tuple(record["class_ids"]),
        dontcare_id=None,
    )


def _open_image(path, flag):
    if not os.path.isfile(path):
        raise InputNotFoundError(f"{flag}={path} does not exist")
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise OneShotInputError(f"{flag}={path} is not a readable image ({error})") from None
    return image


def _rgb(image):
    return np.asarray(image.convert("RGB"), np.uint8)


def _read_video(path):
    """The frames of a video file as a list of [H, W, 3] uint8 (Pillow, else imageio)."""
    try:
        image = Image.open(path)
        frames = [_rgb(frame) for frame in ImageSequence.Iterator(image)]
        if frames:
            return frames
    except (OSError, ValueError):
        pass
    try:
        import imageio.v3 as iio  # requirements.txt: imageio + imageio-ffmpeg (mp4, avi, ...)
    except ImportError:
        raise OneShotInputError(
            f"--image={path}: Pillow cannot read this video and imageio is not installed; "
            "install imageio[ffmpeg] or give its frames as --image_dir"
        ) from None
    try:
        return [np.asarray(frame, np.uint8)[..., :3] for frame in iio.imiter(path)]
    except Exception as error:  # imageio raises many kinds
        raise OneShotInputError(f"--image={path}: cannot read its frames ({error})") from None


def _resize(frame, height, width, nearest=False):
    if frame.shape[:2] == (height, width):
        return frame
    resample = Image.NEAREST if nearest else Image.LANCZOS
    return np.asarray(Image.fromarray(frame).resize((width, height), resample))


def _parse_colour(value, where):
    if isinstance(value, str) and value.startswith("#") and len(value) == 7:
        try:
            return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            pass
    if isinstance(value, list) and len(value) == 3 and all(isinstance(c, int) for c in value):
        if all(0 <= c <= 255 for c in value):
            return tuple(value)
    raise OneShotInputError(f"{where}: colour {value!r} is not '#RRGGBB' or [r, g, b]")


def read_class_colours(path):
    """A class-colour JSON -> LabelSet: a label set file (semantic_labels format) or the
    {name: '#RRGGBB' | [r, g, b]} form, whose ids are the entries' order."""
    where = f"--mask_colours={path}"
    if not os.path.isfile(path):
        raise InputNotFoundError(f"{where} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise OneShotInputError(f"{where} is not valid JSON ({error})") from None
    if isinstance(spec, dict) and ("classes" in spec or "base" in spec):
        try:
            return load_label_set(os.path.abspath(path))
        except LabelSetError as error:
            raise OneShotInputError(f"{where}: {error}") from None
    if not isinstance(spec, dict) or not spec:
        raise OneShotInputError(
            f"{where}: expected a label set or a non-empty {{name: '#RRGGBB'}} object"
        )
    colours = [_parse_colour(value, where) for value in spec.values()]
    if len(set(colours)) != len(colours):
        raise OneShotInputError(f"{where}: two classes share a colour")
    return LabelSet(
        name=os.path.splitext(os.path.basename(path))[0],
        names=tuple(spec),
        colors=np.array(colours, np.uint8),
        used_ids=tuple(range(len(spec))),
        dontcare_id=None,
    )


def _default_label_set(max_id):
    """Names class_<id> and distinct colours for ids 0..max_id (a mask without a colour JSON)."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (max_id + 1, 3), dtype=np.uint8)
    colours[0] = 0
    return LabelSet(
        name="osmis_mask",
        names=tuple(f"class_{i}" for i in range(max_id + 1)),
        colors=colours,
        used_ids=tuple(range(max_id + 1)),
        dontcare_id=None,
    )


def read_mask(path, image_size, image_path, mask_colours=None):
    """A mask file -> ([H, W] int32 original class ids, LabelSet of those ids).

    Args:
        path: the mask (8-bit ids: mode L / P / 1, or grey stored as RGB; or a colour PNG).
        image_size: (H, W) of the image it labels; another size is an error.
        image_path: the image (named in errors).
        mask_colours: a class-colour JSON path, or None.
    """
    mask = _open_image(path, "--mask")
    if (mask.height, mask.width) != tuple(image_size):
        raise OneShotInputError(
            f"--mask={path} is {mask.height} x {mask.width} px but --image={image_path} is "
            f"{image_size[0]} x {image_size[1]} px; a mask must have its image's size"
        )
    label_set = read_class_colours(mask_colours) if mask_colours else None
    if mask.mode in ("RGB", "RGBA"):
        rgb = np.asarray(mask.convert("RGB"), np.uint8)
        grey = bool(np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2]))
        if not grey:
            if label_set is None:
                raise OneShotInputError(
                    f"--mask={path} is a colour image: give --mask_colours (a class-colour "
                    "JSON), or store the class ids as an 8-bit PNG"
                )
            return _ids_of_colours(rgb, label_set, path, mask_colours), label_set
        ids = rgb[..., 0].astype(np.int32)
    elif mask.mode in ("L", "P", "1"):
        ids = np.asarray(mask, np.uint8).astype(np.int32)
    else:
        raise OneShotInputError(
            f"--mask={path} has pixel mode {mask.mode}: expected 8-bit class ids (L or P) or "
            "an RGB colour mask"
        )
    present = np.unique(ids)
    if label_set is None:
        return ids, _default_label_set(int(present.max()))
    missing = [int(i) for i in present if i >= label_set.num_classes]
    if missing:
        raise OneShotInputError(
            f"--mask={path} has class ids {missing[:10]} missing from --mask_colours="
            f"{mask_colours} (ids 0..{label_set.num_classes - 1})"
        )
    return ids, label_set


def _ids_of_colours(rgb, label_set, path, mask_colours):
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    colours = label_set.colors.astype(np.int64)
    table = {int((c[0] << 16) | (c[1] << 8) | c[2]): i for i, c in enumerate(colours)}
    values, inverse = np.unique(code, return_inverse=True)
    unknown = [v for v in values if int(v) not in table]
    if unknown:
        shown = ", ".join(f"#{int(v):06x}" for v in unknown[:5])
        raise OneShotInputError(
            f"--mask={path} has {len(unknown)} colour(s) missing from --mask_colours="
            f"{mask_colours}: {shown}"
        )
    ids = np.array([table[int(v)] for v in values], np.int32)
    return ids[inverse.reshape(code.shape)]


def _contiguous(ids):
    """[H, W] original ids -> ([H, W] uint8 0..K-1, the K original ids present, increasing)."""
    present = np.unique(ids)
    lookup = np.zeros(int(present.max()) + 1, np.uint8)
    lookup[present] = np.arange(len(present), dtype=np.uint8)
    return lookup[ids], tuple(int(i) for i in present)


def builtin_scene(config):
    """(image [H, W, 3] uint8, label [H, W] ADE20K ids) of the default input: training scene
    `scene_index` of the built-in scenes, rendered 3:2 at height scenes_size."""
    from datasets.scenes import render_scene, scene_seed

    height = int(config.scenes_size)
    return render_scene(scene_seed(0, "training", config.scene_index), height, height * 3 // 2)


def load_input(config):
    """The OneShotInput of an OSMIS config (reads the files, chooses the layout)."""
    if config.image_dir:
        where = f"--image_dir={config.image_dir}"
        found = find_files(config.image_dir, IMAGE_EXTENSIONS, where, recursive=False)
        if not found:
            raise OneShotInputError(
                f"{where} has no frames ({', '.join(IMAGE_EXTENSIONS)}); give the frames of a "
                "video as image files"
            )
        files = [found[stem] for stem in sorted(found)]
        frames = [_rgb(_open_image(path, "--image_dir")) for path in files]
        return _assemble(config, frames, None, None, files, f"{len(files)} frames of {where}")
    if config.image:
        path = config.image
        if path.lower().endswith(VIDEO_EXTENSIONS) and not config.mask:
            if not os.path.isfile(path):
                raise InputNotFoundError(f"--image={path} does not exist")
            frames = _read_video(path)
            if not frames:
                raise OneShotInputError(f"--image={path} holds no frames")
            return _assemble(config, frames, None, None, [path], f"{len(frames)} frames of {path}")
        image = _rgb(_open_image(path, "--image"))
        if not config.mask:
            return _assemble(config, [image], None, None, [path], f"image {path} (SIV-GAN)")
        ids, label_set = read_mask(config.mask, image.shape[:2], path, config.mask_colours)
        return _assemble(
            config,
            [image],
            ids,
            label_set,
            [path, config.mask],
            f"image {path}, mask {config.mask}",
        )
    image, label = builtin_scene(config)
    return _assemble(
        config,
        [image],
        label.astype(np.int32),
        load_label_set("ade20k"),
        ["built-in scene"],
        f"built-in scene {config.scene_index} ({image.shape[0]} x {image.shape[1]} px)",
    )


def _assemble(config, frames, ids, label_set, files, source):
    first = frames[0]
    where = files[0] if files else "the input"
    layout = choose_layout(
        first.shape[0], first.shape[1], config.max_size, config.num_blocks, where=where
    )
    h, w = layout.height, layout.width
    stacked = np.stack([_resize(frame, h, w) for frame in frames])  # [F, H, W, 3]
    masks, class_ids = None, ()
    if ids is not None:
        contiguous, class_ids = _contiguous(ids)
        masks = _resize(contiguous, h, w, nearest=True)[None]  # [1, H, W]
        # Classes lost by the resize (a few pixels wide) stay classes of the run.
    return OneShotInput(stacked, masks, class_ids, label_set, layout, source, files)


def check_record(record, stored, path):
    """Raises when a resumed run's input no longer matches the one it was started with."""
    if stored != record:
        differ = sorted(k for k in set(stored) | set(record) if stored.get(k) != record.get(k))
        raise UserError(
            f"{path} records another input ({', '.join(differ)} differ): this run directory was "
            "trained on other data; use a new --checkpoint_dir or the run's --image / --mask"
        )


def read_record(run_dir):
    """The input record of a run directory (osmis_input.json)."""
    path = os.path.join(run_dir, INPUT_RECORD)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--checkpoint_dir={run_dir} has no {INPUT_RECORD}: not an OSMIS run directory"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)
