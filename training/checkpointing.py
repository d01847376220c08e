"""Checkpoint contents that do not depend on how a network stores its sub-layers.

tf.train.Checkpoint follows TF's object graph, but Keras 3 layers held in Python lists are not
part of it (their variables would silently be left out of a checkpoint, or only reachable through
an optimizer's references). We therefore checkpoint every network as a flat bundle of its
variables keyed by their unique Keras paths, e.g. "generator/head_0/conv_0/kernel".
"""

import tensorflow as tf


def variable_bundle(model):
    """A trackable holding each of `model`'s variables under its Keras path."""
    bundle = tf.Module(name=None)
    seen = {}
    for variable in model.variables:
        key = variable.path.replace("/", ".")
        if key in seen and seen[key] is not variable:
            raise ValueError(f"two variables of {model.name} share the path {variable.path}")
        seen[key] = variable
    # tf.Module tracks attributes; a dict attribute is tracked key by key.
    bundle.variables_by_path = dict(sorted(seen.items()))
    return bundle
