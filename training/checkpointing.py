"""Checkpoint contents that do not depend on how a network stores its sub-layers.

tf.train.Checkpoint follows TF's object graph, but Keras 3 layers held in Python lists are not
part of it (their variables would silently be left out of a checkpoint, or only reachable through
an optimizer's references). We therefore checkpoint every network as a flat bundle of its
variables keyed by their position in `model.variables` (an order fixed by the architecture)
and their short name, e.g. "v00012_kernel". Keras paths are not usable as keys: auto-generated
layer names ("seg_former_3/...") depend on how many models the process built before.
Restoring checks every shape, and callers assert that every variable was found.
"""

import tensorflow as tf


def variable_bundle(model):
    """A trackable holding each of `model`'s variables under its position and name."""
    bundle = tf.Module(name=None)
    # tf.Module tracks attributes; a dict attribute is tracked key by key.
    bundle.variables_by_position = {
        f"v{i:05d}_{variable.name}": variable for i, variable in enumerate(model.variables)
    }
    return bundle
