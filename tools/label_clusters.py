"""Heuristic cluster labels: python -m tools.label_clusters --clusters_dir=DIR --k=K
[--output=PATH] [--overwrite]

Writes the mapping of models.synthesis_in_style.labels.auto_label_clusters (colour statistics)
for every layer, as the annotator's JSON (default <clusters_dir>/annotations_k<k>.json): a
starting point to correct in the annotation app (python -m annotator), or a stand-in for it on
the built-in documents. An existing mapping (it may hold your annotations) is kept unless
--overwrite.
"""

import flags as cli

PROGRAM = "python -m tools.label_clusters"


def _run(flag_values, positional):
    cli.reject_positional(positional)
    from models.synthesis_in_style.pipeline import label_clusters

    return label_clusters(
        flag_values.clusters_dir, flag_values.k, flag_values.output, overwrite=flag_values.overwrite
    )


def main(args=None):
    """Runs the command; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM, cli.define_label_clusters_flags, _run, args, required=("clusters_dir", "k")
    )


if __name__ == "__main__":
    main()
