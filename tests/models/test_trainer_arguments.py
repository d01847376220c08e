"""Every family's trainer takes explicit constructor arguments, keras-hub style: one attribute per
argument, get_config() returns them all, and Trainer(**trainer.get_config()) builds the same
trainer. The typed run config reaches a trainer only through its from_run_config classmethod."""

import inspect

import pytest


def _spade():
    from models.spade.config import PRESETS
    from models.spade.trainer import SPADEGAN

    config = PRESETS["tiny"].replace(crop_size=32, load_size=32, ngf=4, ndf=4)
    return SPADEGAN, SPADEGAN.from_run_config(config, num_classes=5, for_training=False), config


def _segformer():
    from models.segformer.config import PRESETS
    from models.segformer.trainer import SegFormerTrainer

    config = PRESETS["tiny"].replace(crop_size=32)
    trainer = SegFormerTrainer.from_run_config(config, num_classes=3, class_weights=[1, 2, 3])
    return SegFormerTrainer, trainer, config


def _stylegan2():
    from models.stylegan2.config import PRESETS
    from models.stylegan2.trainer import StyleGAN2GAN

    config = PRESETS["tiny"]
    return StyleGAN2GAN, StyleGAN2GAN.from_run_config(config, for_training=False), config


def _osmis():
    from models.osmis.config import PRESETS
    from models.osmis.inputs import choose_layout
    from models.osmis.trainer import OSMISGAN

    config = PRESETS["tiny"]
    layout = choose_layout(48, 64, max_size=config.max_size)
    return OSMISGAN, OSMISGAN.from_run_config(config, layout=layout, num_classes=3), config


def _palette():
    from models.palette.config import PRESETS
    from models.palette.trainer import PaletteLayoutGAN

    config = PRESETS["tiny"]
    return PaletteLayoutGAN, PaletteLayoutGAN.from_run_config(config, num_classes=19), config


@pytest.mark.parametrize(
    "make", [_spade, _segformer, _stylegan2, _osmis, _palette], ids=lambda f: f.__name__[1:]
)
def test_trainer_arguments_are_attributes_and_round_trip(make):
    cls, trainer, run_config = make()
    parameters = [
        name
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    config = trainer.get_config()
    # One attribute per constructor argument, and get_config() holds every argument.
    assert sorted(config) == sorted(parameters)
    for name in parameters:
        assert getattr(trainer, name) == config[name], name
    # A setting of the run config passed on under its own name keeps its value (no int() of a
    # float width scale, say).
    # (None / 0 in a run config mean "from the data / the input": num_classes, num_blocks.)
    for name, value in config.items():
        given = getattr(run_config, name, None)
        if name in run_config.field_names() and given not in (None, 0):
            assert value == given, name
    # The run config object is not what the trainer keeps.
    assert not hasattr(trainer, "config")
    twin = cls(**config)
    assert twin.get_config() == config
    assert twin.parameter_counts() == trainer.parameter_counts()
