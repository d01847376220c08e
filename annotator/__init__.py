"""Cluster annotation for the Synthesis-in-Style pipeline (step 4): a small Flask web app.

`models.synthesis_in_style.palette.load_palette` reads the class palette;
`annotator.app.create_app` builds the
app that maps each layer's clusters to classes (see README.md in this folder).
"""

from models.synthesis_in_style.palette import PaletteError, PaletteFileNotFoundError, load_palette

__all__ = ["PaletteError", "PaletteFileNotFoundError", "load_palette"]
