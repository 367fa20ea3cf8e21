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
    terms,
)


def test_shapes_dtypes_and_weight_is_one_over_t():
    samples = build_estimator("iid").draw(5, 12, 3, torch.Generator().manual_seed(0))
    assert samples.mask.shape == (3, 5, 12) and samples.mask.dtype == torch.bool
    assert samples.weight.shape == (3, 5) and samples.weight.dtype == torch.float64
    torch.testing.assert_close(samples.coef, torch.full((3,), 1 / 3, dtype=torch.float64))
    assert samples.prompt_mask is None
    t = 1 / samples.weight
    assert t.min() >= 1e-3 and t.max() <= 1


def test_mask_rate_follows_t():
    samples = build_estimator("iid").draw(2000, 64, 2, torch.Generator().manual_seed(2))
    rate = samples.mask.double().mean(-1)
    assert (rate - 1 / samples.weight).abs().mean() < 0.05


def test_unbiased_for_mask_independent_log_probs():
    log_probs = torch.randn(16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = build_estimator("iid").draw(20000, 16, 2, torch.Generator().manual_seed(1))
    assert_agrees(estimates(samples, log_probs), log_probs.mean().item())


def test_matches_the_enumerated_elbo_and_rejects_a_wrong_weight():
    table = dependent_table()
    # A small min_t keeps its O(min_t) bias far below the statistical error.
    estimator = build_estimator("iid", {"min_t": 1e-5})
    samples = estimator.draw(1, LENGTH, 40000, torch.Generator().manual_seed(3))
    target = exact_elbo(table)
    assert_agrees(terms(samples, table)[:, 0], target)
    forgot_one_over_t = terms(MaskSamples(samples.mask, torch.ones_like(samples.weight)), table)
    assert_rejected(forgot_one_over_t[:, 0], target)


def test_deterministic_for_a_fixed_generator():
    estimator = build_estimator("iid")
    a = estimator.draw(4, 10, 3, torch.Generator().manual_seed(5))
    b = estimator.draw(4, 10, 3, torch.Generator().manual_seed(5))
    c = estimator.draw(4, 10, 3, torch.Generator().manual_seed(6))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.weight, b.weight)
    assert not torch.equal(a.mask, c.mask)


@pytest.mark.parametrize("min_t", [0.0, 1.0, -0.1, "0.1", True])
def test_bad_min_t_is_one_line(min_t):
    with pytest.raises(ConfigError, match=r"^estimator 'iid': min_t must be in \(0.0, 1.0\), got"):
        build_estimator("iid", {"min_t": min_t})


def test_bad_num_samples_is_one_line():
    with pytest.raises(ConfigError, match="^estimator 'iid' needs num_samples >= 1, got 0$"):
        build_estimator("iid").draw(2, 4, 0)
