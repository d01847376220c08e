"""Commands beside the scripts (`python -m tools.<name> --help` shows the usage, --helpfull the
flags):

    export_spade     export a SPADE run's latest checkpoint as a SavedModel
    label_clusters   heuristic cluster labels of a Synthesis-in-Style cluster run
    crops            cut random tiles from page scans (Synthesis in Style, step 1)
    documents        write the procedural document pages
    scenes           write the procedural scenes (ADE20K layout)
    streets          write the procedural streets (Cityscapes layout)
    class_weights    per-class pixel frequencies and inverse-frequency class weights

The annotation app is `python -m annotator`. Each module only parses its flags (flags.py) and
makes one library call (flags.run_tool); `main(args)` runs it in-process, as tests do.
"""
