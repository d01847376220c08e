"""Cluster annotation web app (Synthesis in Style, step 4):

    python -m annotator --clusters_dir=runs/clusters --k=20 [--palette=documents]
        [--mapping=PATH] [--display_size=256] [--host=127.0.0.1] [--port=5000]

Serves annotator/app.py's page for one k of a cluster run; every change is written to the
mapping JSON (default <clusters_dir>/annotations_k<k>.json) at once. Keep --host on the
loopback default and use an SSH tunnel to share it: the app has no authentication.
"""

import sys

import flags as cli

PROGRAM = "python -m annotator"


def _run(flag_values, positional):
    from annotator.app import _is_loopback, create_app, loopback_trusted_hosts

    cli.reject_positional(positional)
    host = flag_values.host
    loopback = _is_loopback(host)
    app = create_app(
        flag_values.clusters_dir,
        k=flag_values.k,
        palette=flag_values.palette,
        mapping_path=flag_values.mapping,
        display_size=flag_values.display_size,
        trusted_hosts=loopback_trusted_hosts(host) if loopback else None,
    )
    if not loopback:
        print(
            f"WARNING: binding to {host}: anyone who can reach this port can read the "
            "samples and change the mapping file (no authentication). Prefer 127.0.0.1 and an "
            "SSH tunnel.",
            file=sys.stderr,
        )
    mapping = app.extensions["annotator"]["mapping"]
    print(f"annotating k={flag_values.k}; mapping file {mapping.path}", file=sys.stderr)
    app.run(host=host, port=flag_values.port, debug=False, use_reloader=False, threaded=True)


def main(args=None):
    """Runs the app; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM, cli.define_annotator_flags, _run, args, required=("clusters_dir", "k")
    )


if __name__ == "__main__":
    main()
