"""Typed configs: frozen dataclasses that validate themselves and round-trip through JSON.

Every model family has one config class (models/<family>/config.py) built from shared parts
(training.config.RunConfig, training.config.AdamConfig, datasets.config.DataConfig); presets are
instances of it. A field says, in its metadata, what it means and whether it may change when a
run is resumed (how long or how visibly we train, never what is trained):

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class MyConfig(Config):
        depth: int = field(4, "Blocks of the network.")
        max_steps: int = field(0, "Stop after this many steps.", resumable=True)

        def validate(self):
            super().validate()
            self.check_positive("depth")

    config = MyConfig(depth=8)            # validated on construction
    config.replace(max_steps=10)          # a validated copy
    MyConfig.from_dict(config.to_dict())  # == config

Field names are the command-line flag names (flags.py translates flags into configs), so a
ConfigError names the fields it is about in `fields`; the command line adds the flags.
"""

import dataclasses
import json
import os

from core.errors import UserError


class ConfigError(UserError):
    """A config value, or a combination of values, that cannot work.

    Attributes:
        fields: the names of the fields the error is about (the flags of the same names).
    """

    def __init__(self, message, fields=()):
        super().__init__(message)
        self.fields = tuple(fields)


def field(default=dataclasses.MISSING, help="", *, resumable=False, choices=None):
    """A config field with its help text, resume rule and allowed values.

    Args:
        default: the default value (immutable: numbers, strings, tuples, None).
        help: one line on what the field means (shown by --helpfull through flags.py).
        resumable: True when the value may differ between the run that wrote a checkpoint and
            the run that resumes it.
        choices: the allowed values, checked by Config.validate (None: any).
    """
    metadata = {"help": help, "resumable": resumable, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Base class of every typed config; subclasses are frozen, keyword-only dataclasses."""

    def __post_init__(self):
        self.derive()
        self.validate()

    def derive(self):
        """Fills fields whose default depends on other fields (override; use self._set)."""

    def validate(self):
        """Raises ConfigError for a value that cannot work (override and call super first)."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices is not None and value not in choices:
                raise ConfigError(
                    f"{f.name}={value!r} is not one of {', '.join(map(str, choices))}", (f.name,)
                )

    def _set(self, name, value):
        object.__setattr__(self, name, value)  # only inside derive(), before validation

    # --- Checks shared by the validators ---------------------------------------------------

    def check_positive(self, *names):
        for name in names:
            value = getattr(self, name)
            if value is None or value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}", (name,))

    def check_non_negative(self, *names):
        for name in names:
            value = getattr(self, name)
            if value is None or value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}", (name,))

    # --- Introspection and serialisation ---------------------------------------------------

    @classmethod
    def field_names(cls):
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def resumable_fields(cls):
        """Names of the fields that may change when a run is resumed."""
        return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable"))

    @classmethod
    def field_help(cls, name):
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}[name]

    def replace(self, **changes):
        """A validated copy with `changes` applied (unknown names are a ConfigError)."""
        unknown = sorted(set(changes) - self.field_names())
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no field {', '.join(unknown)}", unknown)
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The fields as a JSON-serialisable dict (tuples become lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values, strict=True):
        """The config of `values` (as written by to_dict).

        Args:
            values: {field name: value}.
            strict: unknown keys are a ConfigError; with strict=False they are dropped (a
                config.json written by an older version that stored every flag).
        """
        names = cls.field_names()
        unknown = sorted(set(values) - names)
        if unknown and strict:
            raise ConfigError(f"{cls.__name__} has no field {', '.join(unknown)}", unknown)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in values:
                value = values[f.name]
                kwargs[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)

    def save(self, path):
        """Writes the config as JSON through a temporary file (never half a file)."""
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path, strict=False):
        """Reads a config written by save() (see from_dict for `strict`)."""
        with open(path) as f:
            return cls.from_dict(json.load(f), strict=strict)


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value
