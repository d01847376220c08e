"""Segment images with a trained SegFormer: not built yet.

The segmenter (SegFormer MiT-B0..B5, sliding-window inference, --gt_dir evaluation) is the next
milestone; see README.md, "Roadmap".
"""

import sys

if __name__ == "__main__":
    sys.exit("segment.py: the SegFormer segmenter is not built yet in this version (see README).")
