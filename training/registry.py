"""The model families the engine can train, registered by the families themselves.

A family's package (models/<family>/__init__.py) registers one `Family`; the engine
(training.loop), the command line (flags.py) and the evaluation code look families up here by
name, so adding a family touches no if-chain anywhere:

    registry.register(registry.Family(
        name="spade", config_class=SPADEConfig, presets=PRESETS,
        make_task=_make_task, build_for_dry_run=_build_for_dry_run,
    ))
"""

import dataclasses
from collections.abc import Callable, Mapping

from core.config import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class Family:
    """One trainable model family.

    Attributes:
        name: the --model name.
        config_class: its typed config (a core.config.Config subclass).
        presets: {preset name: config instance}.
        make_task: config -> the family's task object (see training.loop).
        build_for_dry_run: config -> the model object (networks only, no data, no weights), for
            parameter counts.
        title: human-readable name for messages.
    """

    name: str
    config_class: type
    presets: Mapping[str, Config]
    make_task: Callable
    build_for_dry_run: Callable
    title: str = ""


_FAMILIES = {}


def register(family):
    """Adds `family` (re-registering the same name replaces it: module reloads in tests)."""
    _FAMILIES[family.name] = family
    return family


def names():
    return tuple(_FAMILIES)


def get(name):
    """The family registered as `name`, or a ConfigError listing the registered ones."""
    if name not in _FAMILIES:
        raise ConfigError(
            f"model={name!r} is unknown; choose one of {', '.join(_FAMILIES) or '(none)'}",
            ("model",),
        )
    return _FAMILIES[name]


def preset(model, name):
    """The config of preset `name` of family `model`."""
    presets = get(model).presets
    if name not in presets:
        raise ConfigError(
            f"preset={name!r} is unknown for model={model}; choose one of {', '.join(presets)}",
            ("preset", "model"),
        )
    return presets[name]


def config_from_dict(values, strict=True):
    """The typed config of a stored dict (e.g. a run's config.json), by its "model" key."""
    return get(values.get("model", "")).config_class.from_dict(values, strict=strict)
