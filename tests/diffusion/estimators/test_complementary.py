import pytest
import torch

from bgpo_lightning.diffusion.estimators import build_estimator
from bgpo_lightning.diffusion.masking import MaskSamples
from bgpo_lightning.errors import ConfigError
from tests.diffusion.estimators.exact import (
    LENGTH,
    assert_agrees,
    assert_rejected,
    dependent_table,
    estimates,
    exact_elbo,
)


def test_pairs_cover_every_token_exactly_once():
    samples = build_estimator("complementary").draw(30, 16, 6, torch.Generator().manual_seed(0))
    assert samples.mask.shape == (6, 30, 16) and samples.weight.dtype == torch.float64
    first, second = samples.mask[0::2], samples.mask[1::2]
    assert torch.equal(first ^ second, torch.ones_like(first))
    # Weights 1/t and 1/(1-t) of the same t.
    t = 1 / samples.weight[0::2]
    torch.testing.assert_close(1 / samples.weight[1::2], 1 - t)
    torch.testing.assert_close(samples.coef, torch.full((6,), 1 / 6, dtype=torch.float64))


def test_timesteps_are_stratified_over_pairs_and_clamped():
    min_t = 0.01
    estimator = build_estimator("complementary", {"min_t": min_t})
    samples = estimator.draw(200, 8, 8, torch.Generator().manual_seed(1))
    t = 1 / samples.weight[0::2]  # (4 pairs, N)
    for p in range(4):
        assert (t[p] >= max(p / 4, min_t) - 1e-12).all()
        assert (t[p] <= min((p + 1) / 4, 1 - min_t) + 1e-12).all()


def test_unbiased_for_mask_independent_log_probs():
    log_probs = torch.randn(16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = build_estimator("complementary").draw(5000, 16, 2, torch.Generator().manual_seed(2))
    assert_agrees(estimates(samples, log_probs), log_probs.mean().item())


def test_matches_the_enumerated_elbo_and_rejects_a_wrong_weight():
    table = dependent_table()
    estimator = build_estimator("complementary", {"min_t": 1e-5})
    samples = estimator.draw(20000, LENGTH, 4, torch.Generator().manual_seed(3))
    target = exact_elbo(table)
    assert_agrees(estimates(samples, table), target)
    # Reusing the first draw's 1/t for the complement forgets that its rate is 1 - t.
    same_weight = samples.weight[0::2].repeat_interleave(2, dim=0)
    assert_rejected(estimates(MaskSamples(samples.mask, same_weight), table), target)


def test_deterministic_for_a_fixed_generator():
    estimator = build_estimator("complementary")
    a = estimator.draw(4, 10, 4, torch.Generator().manual_seed(5))
    b = estimator.draw(4, 10, 4, torch.Generator().manual_seed(5))
    c = estimator.draw(4, 10, 4, torch.Generator().manual_seed(6))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.weight, b.weight)
    assert not torch.equal(a.mask, c.mask)


@pytest.mark.parametrize("num_samples", [1, 3])
def test_odd_num_samples_is_one_line(num_samples):
    with pytest.raises(
        ConfigError,
        match=f"^estimator 'complementary' draws masks in pairs: num_samples must be even, "
        f"got {num_samples}$",
    ):
        build_estimator("complementary").check_num_samples(num_samples)


def test_bad_min_t_is_one_line():
    with pytest.raises(
        ConfigError, match=r"^estimator 'complementary': min_t must be in \(0.0, 0.5\), got 0.5$"
    ):
        build_estimator("complementary", {"min_t": 0.5})
