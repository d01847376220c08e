"""Finding the label values a dataset's label maps store, by reading every one of them.

For data that comes without a label set (a folder of masks holding 0 / 255, say): the values
found become the classes, in increasing order (semantic_labels/label_values.py turns them
into a label set whose class k is the k-th value). The SPADE TF port does the same when its
semantic_labels.txt does not exist yet.

Example:
    values = discover_label_values([label for _, label in pairs])   # (0, 255)
"""

from __future__ import annotations

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.io import InputError


def discover_label_values(label_paths, *, where: str = "the label maps") -> tuple[int, ...]:
    """The distinct values of the 8-bit label maps `label_paths`, increasing.

    Args:
        label_paths: label map files (single-channel 8-bit PNGs).
        where: how the error of an empty list names the data (e.g. "--label_dir=masks").

    Raises:
        InputError: no label maps, a file that is no image or not single-channel 8-bit
            (its path named).
    """
    label_paths = list(label_paths)
    if not label_paths:
        raise InputError(f"{where}: no label maps to find the label values in")
    seen = np.zeros(256, bool)
    for path in label_paths:
        try:
            with Image.open(path) as image:
                mode = image.mode
                values = np.asarray(image)
        except (OSError, UnidentifiedImageError) as error:
            raise InputError(f"label map {path} is unreadable ({error})") from None
        # The modes datasets.pipeline.load_label_map reads: 8-bit grey or palette indices, and
        # integer images whose values fit in 8 bits.
        if mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise InputError(
                f"label map {path} is a {mode} image; label maps are single-channel 8-bit "
                "PNGs of label values"
            )
        if values.size and (values.min() < 0 or values.max() > 255):
            raise InputError(f"label map {path} holds values outside 0..255; label maps are 8-bit")
        seen[np.unique(values).astype(np.intp)] = True
    return tuple(int(v) for v in np.flatnonzero(seen))
