"""Write procedural document pages with ink masks:

    python -m tools.documents --root=data/documents [--num_train=40] [--num_val=10]
        [--height=1024] [--width=768] [--seed=0]

Masks hold 0 background, 1 printed text, 2 handwritten text (semantic_labels/documents.json);
layout and guarantees in datasets/documents.py. Prints the dataset folder.
"""

import flags as cli

PROGRAM = "python -m tools.documents"


def _run(flag_values, positional):
    cli.reject_positional(positional)
    from datasets.documents import generate_documents

    path = generate_documents(
        flag_values.root,
        num_train=flag_values.num_train,
        num_val=flag_values.num_val,
        height=flag_values.height,
        width=flag_values.width,
        seed=flag_values.seed,
    )
    print(path)
    return path


def main(args=None):
    """Runs the command; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM, cli.define_documents_flags, _run, args, required=("root",), value_errors=True
    )


if __name__ == "__main__":
    main()
