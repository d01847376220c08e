"""tf.distribute strategy selection (never a home-made scheme).

- MirroredStrategy: all GPUs of one machine (or given devices), synchronous all-reduce.
- MultiWorkerMirroredStrategy: several machines (or processes), configured by the TF_CONFIG
  environment variable, e.g. for worker 0 of two:
      TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                  "task": {"type": "worker", "index": 0}}'
  Worker 0 is the chief: it alone writes TensorBoard logs, samples and the export; every worker
  takes part in checkpoint saves (a collective), non-chief ones into a scratch directory.
"""

import json
import os

import tensorflow as tf


def make_strategy(kind="auto", devices=None):
    """Returns the tf.distribute strategy for `--distribute=kind`.

    Args:
        kind: auto | none | mirrored | multiworker.
        devices: optional device list for MirroredStrategy (tests use logical CPUs).
    """
    if kind == "auto":
        if os.environ.get("TF_CONFIG"):
            kind = "multiworker"
        elif devices or len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "none"
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--distribute=multiworker needs the TF_CONFIG environment variable")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--distribute={kind!r} is unknown; choose auto, none, mirrored, multiworker")


def worker_info(strategy):
    """(is_chief, task_id) of this process under `strategy`."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True, 0
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0)
    return is_chief, task_id
