"""Typed configs: validation on construction, JSON round trip, resume rules, the registry and the
flags -> config translation."""

import dataclasses
import json

import pytest

import flags as cli
from core.config import Config, ConfigError, field
from models.palette.config import PaletteConfig
from models.segformer.config import SegFormerConfig
from models.spade.config import PRESETS as SPADE_PRESETS
from models.spade.config import SPADEConfig
from models.stylegan2.config import StyleGAN2Config
from training import registry


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Toy(Config):
    depth: int = field(4, "Blocks.")
    name: str = field("a", "A name.", choices=("a", "b"))
    steps: int = field(0, "Steps.", resumable=True)
    sizes: tuple = field((1, 2), "Sizes.")

    def validate(self):
        super().validate()
        self.check_positive("depth")


def test_config_validates_round_trips_and_knows_resumable_fields(tmp_path):
    toy = _Toy(depth=8, sizes=(3, 4))
    assert _Toy.from_dict(json.loads(json.dumps(toy.to_dict()))) == toy
    assert toy.to_dict()["sizes"] == [3, 4]
    path = str(tmp_path / "config.json")
    toy.save(path)
    assert _Toy.load(path) == toy
    assert _Toy.resumable_fields() == {"steps"}
    with pytest.raises(ConfigError, match="depth must be positive") as error:
        _Toy(depth=0)
    assert error.value.fields == ("depth",)
    with pytest.raises(ConfigError, match="name='c' is not one of a, b"):
        toy.replace(name="c")
    with pytest.raises(ConfigError, match="no field colour"):
        toy.replace(colour=1)
    with pytest.raises(ConfigError, match="no field colour"):
        _Toy.from_dict({"colour": 1})
    assert _Toy.from_dict({"colour": 1, "depth": 2}, strict=False) == _Toy(depth=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        toy.depth = 3


@pytest.mark.parametrize(
    "config_class", [SPADEConfig, SegFormerConfig, StyleGAN2Config, PaletteConfig]
)
def test_family_presets_are_valid_instances_that_round_trip(config_class):
    family = registry.get(config_class().model)
    assert family.config_class is config_class
    for name, preset in family.presets.items():
        assert isinstance(preset, config_class) and preset.preset == name
        assert config_class.from_dict(preset.to_dict()) == preset
        # What may change on resume: how long or how visibly we train, never what is trained.
        assert {"max_steps", "max_minutes", "checkpoint_dir", "mixed_precision"} <= (
            config_class.resumable_fields()
        )
        assert not {"batch_size", "lr", "seed", "model"} & config_class.resumable_fields()


def test_derived_paths_follow_the_run_directory():
    config = SPADE_PRESETS["tiny"]
    assert config.checkpoint_dir == "runs/spade_tiny"
    assert config.tensorboard_dir == "runs/spade_tiny/logs"
    moved = config.replace(checkpoint_dir="elsewhere", tensorboard_dir=None, results_dir=None)
    assert (moved.tensorboard_dir, moved.results_dir) == ("elsewhere/logs", "elsewhere/samples")


def test_validation_lives_with_the_config():
    with pytest.raises(ConfigError, match="load_size=60 must be >= crop_size=64"):
        SPADE_PRESETS["tiny"].replace(load_size=60)
    with pytest.raises(ConfigError, match="multiple of 32"):
        SegFormerConfig(crop_size=100)
    with pytest.raises(ConfigError, match="float32 only"):
        StyleGAN2Config(mixed_precision="mixed_bfloat16")
    with pytest.raises(ConfigError, match="needs synthetic_train_list"):
        SegFormerConfig(train_mix="mixed")


def test_registry_names_unknown_families_and_presets():
    assert {"spade", "segformer", "stylegan2"} <= set(registry.names())
    with pytest.raises(ConfigError, match="model='gaugan' is unknown; choose one of"):
        registry.get("gaugan")
    with pytest.raises(ConfigError, match="preset='ffhq' is unknown for model=stylegan2"):
        registry.preset("stylegan2", "ffhq")
    stored = SPADE_PRESETS["tiny"].to_dict()
    assert registry.config_from_dict(stored) == SPADE_PRESETS["tiny"]


def test_flags_translate_into_the_family_config_and_name_flags_in_errors():
    config = cli.config_from_args(["--model=segformer", "--max_steps=7", "--checkpoint_dir=r"])
    assert isinstance(config, SegFormerConfig)
    assert (config.max_steps, config.tensorboard_dir, config.variant) == (7, "r/logs", "tiny")
    # A flag the family has no use for is an error, never silently ignored.
    with pytest.raises(ConfigError, match="--ngf does not apply to --model=segformer"):
        cli.config_from_args(["--model=segformer", "--ngf=16"])
    with pytest.raises(ConfigError, match="--load_size=60 must be >= --crop_size=64"):
        cli.config_from_args(["--load_size=60"])
    with pytest.raises(ConfigError, match="--dataset=folders needs --image_dir and --label_dir"):
        cli.config_from_args(["--dataset=folders"])
