"""Import a Hugging Face SegFormer / MiT checkpoint as a SegFormer run directory:

    python -m tools.import_segformer --checkpoint=DIR --output_dir=RUN [--dataset=...]
        [--data_root=...] [--image_dir=... --label_dir=...] [--num_classes=K]
        [--set=name=value,...] [--overwrite]

DIR is a model folder as `huggingface-cli download nvidia/segformer-b0-finetuned-ade-512-512
--local-dir DIR` writes it (model.safetensors or pytorch_model.bin; torch is not needed). The run
(models/segformer/importer.py) is read by segment.py / evaluate.py --checkpoint_dir=RUN and
fine-tuned by train.py --model=segformer --checkpoint_dir=RUN (with the run's settings). An
encoder-only nvidia/mit-b* file gets a fresh decode head of --num_classes (or the dataset's).
"""

import flags as cli

PROGRAM = "python -m tools.import_segformer"


def _settings(items):
    settings = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set: expected name=value, got {item!r}")
        settings[name.strip()] = value.strip()
    return settings


def _run(flag_values, positional):
    cli.reject_positional(positional)
    settings = _settings(flag_values.set)
    from models.segformer.importer import import_hf_run  # TensorFlow loads after the flags

    return import_hf_run(
        flag_values.checkpoint,
        flag_values.output_dir,
        dataset=flag_values.dataset,
        data_root=flag_values.data_root,
        image_dir=flag_values.image_dir,
        label_dir=flag_values.label_dir,
        num_classes=flag_values.num_classes,
        settings=settings,
        overwrite=flag_values.overwrite,
    )


def main(args=None):
    """Runs the command; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM,
        cli.define_import_segformer_flags,
        _run,
        args,
        required=("checkpoint", "output_dir"),
        value_errors=True,
    )


if __name__ == "__main__":
    main()
