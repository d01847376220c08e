"""What the generic training loop needs to know about StyleGAN2: images, the GAN, sample grids,
export.

StyleGAN2 trains on unlabelled images: the built-in procedural document pages cut into crops
(--dataset=documents, generated on demand under --data_root), or any folder / JSON list of
images (--dataset=images). Sample grids come from the EMA generator at fixed latents, so
successive grids of one run are directly comparable.
"""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from datasets import images as images_lib
from models.stylegan2 import export as stylegan2_export
from models.stylegan2.trainer import StyleGAN2GAN

# Sample grid: GRID x GRID images from fixed latents.
GRID = 4


def builtin_document_pages(config):
    """The built-in document pages of a config (generated on first use); returns their root.

    Layout (datasets/documents.py): images/{training,validation}/page_*.png and the ink masks
    in masks/...; --num_pages training pages and a tenth as many (at least 1) held out.
    """
    from datasets import documents

    kwargs = dict(num_train=config.num_pages, num_val=max(1, config.num_pages // 10), seed=0)
    root = documents.documents_root(config.data_root, **kwargs)
    return documents.generate_documents(root, progress=config.progress, **kwargs)


def builtin_document_crops(config, log=print):
    """The crops of the built-in document pages for a config: (train.json, val.json) paths.

    Pages are generated once (builtin_document_pages); crops of the training resolution once
    beside them (<pages>_crops<res>px_n<num_crops>), written to a temporary folder first so an
    interrupted preparation is never mistaken for a complete one.
    """
    from datasets import crops as crops_lib

    pages_root = builtin_document_pages(config)
    crops_dir = f"{pages_root}_crops{config.resolution}px_n{config.num_crops}"
    lists = tuple(os.path.join(crops_dir, name) for name in ("train.json", "val.json"))
    if all(os.path.isfile(path) for path in lists):
        return lists
    tmp = crops_dir + ".partial"
    if os.path.exists(tmp):
        import shutil

        shutil.rmtree(tmp)  # our own interrupted preparation, never user data
    log(f"Cutting {config.num_crops} crops of {config.resolution} px into {crops_dir}")
    crops_lib.prepare_crops(
        input_dir=os.path.join(pages_root, "images", "training"),
        output_dir=tmp,
        num_crops=config.num_crops,
        crop_size=config.resolution,
        # The built-in pages are ~1000 px: let the random downscale (1-4x) reach small text.
        min_side=max(256, config.resolution),
        seed=0,
        progress=config.progress,
    )
    os.replace(tmp, crops_dir)
    return lists


def resolve_image_lists(config):
    """(training image paths, validation image paths) of a StyleGAN2 config."""
    if config.dataset == "documents":
        train_list, val_list = builtin_document_crops(config)
        return (
            images_lib.image_list(list_path=train_list, flag="built-in documents"),
            images_lib.image_list(list_path=val_list, flag="built-in documents"),
        )
    if config.image_dir:
        train = images_lib.image_list(image_dir=config.image_dir, flag="--image_dir")
    else:
        train = images_lib.image_list(list_path=config.train_list, flag="--train_list")
    val = []
    if config.val_image_dir:
        val = images_lib.image_list(image_dir=config.val_image_dir, flag="--val_image_dir")
    elif config.val_list:
        val = images_lib.image_list(list_path=config.val_list, flag="--val_list")
    return train, val


def sample_grid(images):
    """[GRID*GRID, R, R, 3] uint8 -> one [GRID*R, GRID*R, 3] uint8 grid."""
    n, r = images.shape[0], images.shape[1]
    rows = n // GRID
    return (
        images[: rows * GRID]
        .reshape(rows, GRID, r, r, 3)
        .transpose(0, 2, 1, 3, 4)
        .reshape(rows * r, GRID * r, 3)
    )


class StyleGAN2Task:
    """StyleGAN2 for training/loop.fit: images, the GAN, EMA sample grids, the SavedModel."""

    title = "StyleGAN2"
    num_classes = 0  # unlabelled images
    example_name = "images"  # what the training log counts

    def __init__(self, config):
        self.config = config
        self.train_pairs, self.val_paths = resolve_image_lists(config)
        self.model = None
        # Fixed latents of the sample grids (the same for every grid of the run).
        self._grid_z = (
            np.random.default_rng(config.seed)
            .standard_normal((GRID * GRID, config.z_dim))
            .astype(np.float32)
        )

    @property
    def monitoring_pairs(self):
        return []

    def diagnose(self, paths):
        images_lib.diagnose_images(paths)

    def build(self, steps_per_epoch):
        """Creates the model (the caller opens the strategy scope)."""
        self.model = StyleGAN2GAN.from_run_config(self.config, steps_per_epoch=steps_per_epoch)
        return self.model

    def dataset_fn(self, input_context, start_step):
        return images_lib.make_image_dataset(
            self.train_pairs,
            size=self.config.resolution,
            global_batch_size=self.config.batch_size,
            seed=self.config.seed,
            start_step=start_step,
            input_context=input_context,
        )

    def prepare_monitoring(self):
        pass

    def write_samples(self, writer, step):
        images = stylegan2_export.to_uint8(
            self.model.sample(tf.constant(self._grid_z), truncation_psi=1.0)
        ).numpy()
        grid = sample_grid(images)
        os.makedirs(self.config.results_dir, exist_ok=True)
        Image.fromarray(grid).save(os.path.join(self.config.results_dir, f"step_{step:08d}.png"))
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image("samples/ema_fixed_z", grid[None], max_outputs=1)

    def evaluate(self, strategy, writer, step):
        """No metric during training; FID / KID: evaluate.py --mode=synthesis."""
        return None

    def export(self, path):
        return stylegan2_export.export_stylegan2(self.model, path)
