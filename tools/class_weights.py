"""Per-class pixel frequencies and inverse-frequency class weights of a segmentation dataset:

    python -m tools.class_weights --dataset=facesynthetics --data_root=data/faces \
        --output=weights.json [--split=training] [--num_classes=N] [--overwrite] [--noprogress]

Writes {"frequencies", "weights", "pixel_counts", "dataset", "split", "num_files"} as JSON
(datasets/class_weights.py); train.py --class_weights=weights.json uses the weights.
--dataset=folders / json take --image_dir / --label_dir or --train_list (and --num_classes).
"""

import sys

import flags as cli

PROGRAM = "python -m tools.class_weights"


def _run(flag_values, positional):
    cli.reject_positional(positional)
    from datasets.class_weights import write_class_weights

    result = write_class_weights(
        flag_values.output,
        flag_values.dataset,
        split=flag_values.split,
        data_root=flag_values.data_root,
        image_dir=flag_values.image_dir,
        label_dir=flag_values.label_dir,
        val_image_dir=flag_values.val_image_dir,
        val_label_dir=flag_values.val_label_dir,
        train_list=flag_values.train_list,
        val_list=flag_values.val_list,
        split_seed=flag_values.split_seed,
        num_classes=flag_values.num_classes,
        overwrite=flag_values.overwrite,
        progress=flag_values.progress,
    )
    print(f"{PROGRAM}: wrote {flag_values.output}", file=sys.stderr)
    return result


def main(args=None):
    """Runs the command; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM,
        cli.define_class_weights_flags,
        _run,
        args,
        required=("dataset", "output"),
        value_errors=True,
    )


if __name__ == "__main__":
    main()
