import pytest
import torch

from bgpo_lightning.diffusion.estimators import (
    ESTIMATORS,
    MaskEstimator,
    build_estimator,
    check_estimator,
    register_estimator,
)
from bgpo_lightning.diffusion.masking import MaskSamples, check_timestep_sampler
from bgpo_lightning.errors import ConfigError

NAMES = ["blockwise", "complementary", "iid", "one_step", "sdmc", "stratified"]


def test_every_estimator_is_registered_under_its_name():
    assert sorted(ESTIMATORS) == NAMES
    for name, cls in ESTIMATORS.items():
        assert cls.name == name and issubclass(cls, MaskEstimator)
        assert check_estimator(name) == name


@pytest.mark.parametrize("name", NAMES)
def test_every_estimator_draws_the_common_output(name):
    estimator = build_estimator(name)
    samples = estimator.draw(3, 64, 6, torch.Generator().manual_seed(0), prompt_length=5)
    assert isinstance(samples, MaskSamples)
    assert samples.mask.shape == (6, 3, 64) and samples.mask.dtype == torch.bool
    assert samples.weight.shape == (6, 3) and samples.weight.dtype == torch.float64
    assert samples.coef.shape == (6,) and samples.coef.dtype == torch.float64
    assert abs(samples.coef.sum().item() - 1) < 1e-12
    assert samples.prompt_mask is None or samples.prompt_mask.shape == (6, 3, 5)


def test_unknown_name_is_one_line():
    with pytest.raises(ConfigError) as error:
        build_estimator("antithetic")
    assert str(error.value) == (
        "unknown estimator 'antithetic'; choose one of: " + ", ".join(NAMES)
    )


def test_unknown_setting_is_one_line():
    with pytest.raises(ConfigError) as error:
        build_estimator("iid", {"min_t": 0.01, "max_t": 0.9})
    assert str(error.value) == "estimator 'iid' has no setting 'max_t'; its settings: min_t"


def test_settings_are_built_from_the_dict():
    estimator = build_estimator("sdmc", {"rule": "simpson", "nodes": 5})
    assert (estimator.settings.rule, estimator.settings.nodes) == ("simpson", 5)
    assert build_estimator("sdmc").settings == ESTIMATORS["sdmc"].Settings()


def test_settings_of_another_estimator_are_refused():
    with pytest.raises(TypeError, match="estimator 'iid' takes IidSettings, got SdmcSettings"):
        ESTIMATORS["iid"](ESTIMATORS["sdmc"].Settings())


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="estimator 'iid' is registered twice"):
        register_estimator("iid")(type("Again", (MaskEstimator,), {}))


def test_zero_samples_are_refused_by_every_estimator():
    for name in NAMES:
        with pytest.raises(ConfigError, match=f"^estimator '{name}' needs num_samples >= 1"):
            build_estimator(name).check_num_samples(0)


def test_timestep_sampler_check_goes_through_the_registry():
    assert check_timestep_sampler("iid") == "iid"
    with pytest.raises(ConfigError, match="unknown timestep_sampler 'sdmc'"):
        check_timestep_sampler("sdmc")
