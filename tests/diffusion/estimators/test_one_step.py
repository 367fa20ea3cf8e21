import pytest
import torch

from bgpo_lightning.diffusion.estimators import build_estimator
from bgpo_lightning.errors import ConfigError
from tests.diffusion.estimators.exact import terms


def test_whole_response_masked_with_weight_one():
    samples = build_estimator("one_step").draw(
        5, 12, 3, torch.Generator().manual_seed(0), prompt_length=7
    )
    assert samples.mask.shape == (3, 5, 12) and samples.mask.all()
    assert samples.weight.dtype == torch.float64 and torch.equal(
        samples.weight, torch.ones(3, 5, dtype=torch.float64)
    )
    torch.testing.assert_close(samples.coef, torch.full((3,), 1 / 3, dtype=torch.float64))
    assert samples.prompt_mask.shape == (3, 5, 7) and samples.prompt_mask.dtype == torch.bool


def test_term_is_the_mean_token_log_prob():
    log_probs = torch.randn(12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    samples = build_estimator("one_step").draw(2, 12, 1, prompt_length=3)
    torch.testing.assert_close(terms(samples, log_probs), log_probs.mean().expand(1, 2))


def test_prompt_mask_rate_and_independent_draws():
    estimator = build_estimator("one_step", {"prompt_mask_prob": 0.3})
    samples = estimator.draw(200, 4, 2, torch.Generator().manual_seed(2), prompt_length=50)
    rate = samples.prompt_mask.double().mean().item()
    assert abs(rate - 0.3) < 0.01
    assert not torch.equal(samples.prompt_mask[0], samples.prompt_mask[1])


def test_zero_probability_keeps_the_prompt_clean():
    estimator = build_estimator("one_step", {"prompt_mask_prob": 0.0})
    samples = estimator.draw(3, 4, 2, torch.Generator().manual_seed(3))
    assert samples.prompt_mask.shape == (2, 3, 0)
    samples = estimator.draw(3, 4, 2, torch.Generator().manual_seed(3), prompt_length=5)
    assert not samples.prompt_mask.any()


def test_deterministic_for_a_fixed_generator():
    estimator = build_estimator("one_step")
    a = estimator.draw(4, 10, 2, torch.Generator().manual_seed(5), prompt_length=20)
    b = estimator.draw(4, 10, 2, torch.Generator().manual_seed(5), prompt_length=20)
    c = estimator.draw(4, 10, 2, torch.Generator().manual_seed(6), prompt_length=20)
    assert torch.equal(a.prompt_mask, b.prompt_mask)
    assert not torch.equal(a.prompt_mask, c.prompt_mask)


def test_prompt_length_is_required_when_the_prompt_is_masked():
    with pytest.raises(ValueError, match="masks the prompt: pass prompt_length >= 1"):
        build_estimator("one_step").draw(2, 4, 1)


@pytest.mark.parametrize("probability", [1.0, -0.1])
def test_bad_probability_is_one_line(probability):
    with pytest.raises(
        ConfigError,
        match=rf"^estimator 'one_step': prompt_mask_prob must be in \[0.0, 1.0\), "
        rf"got {probability}$",
    ):
        build_estimator("one_step", {"prompt_mask_prob": probability})
