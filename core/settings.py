"""Typed values of "name=value" settings for a typed config (the importers' --set flag)."""

import dataclasses

from core.config import ConfigError

_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def parse_settings(config_class, settings, fixed=()):
    """{field: typed value} of {name: value or its string}, by `config_class`'s field types.

    Args:
        config_class: a core.config.Config dataclass.
        settings: {name: value}; strings of int / float / bool fields are converted.
        fixed: names the caller sets itself (giving them is an error naming them).

    Raises:
        ConfigError: an unknown or fixed name, or a value of the wrong type (naming --set).
    """
    types = {f.name: f.type for f in dataclasses.fields(config_class)}
    parsed = {}
    for name, value in settings.items():
        if name not in types:
            raise ConfigError(f"--set: {config_class.__name__} has no field {name!r}", ("set",))
        if name in fixed:
            raise ConfigError(
                f"--set {name}: the importer sets {name} (from the checkpoint or its own flag)",
                ("set",),
            )
        kind = types[name] if isinstance(types[name], str) else types[name].__name__
        if isinstance(value, str) and kind in ("int", "float", "bool"):
            try:
                if kind == "bool":
                    value = _BOOLS[value.lower()]
                else:
                    value = int(value) if kind == "int" else float(value)
            except (KeyError, ValueError):
                raise ConfigError(f"--set {name}={value!r} is not a {kind}", ("set",)) from None
        parsed[name] = value
    return parsed
