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


def test_shapes_and_exact_counts_one_per_stratum():
    n_t, length = 4, 12
    samples = build_estimator("stratified").draw(50, length, n_t, torch.Generator().manual_seed(0))
    assert samples.mask.shape == (n_t, 50, length) and samples.mask.dtype == torch.bool
    assert samples.weight.shape == (n_t, 50) and samples.weight.dtype == torch.float64
    torch.testing.assert_close(samples.coef, torch.full((n_t,), 1 / n_t, dtype=torch.float64))
    counts = samples.mask.sum(-1)
    # Sample j's count lies in stratum j: floor(j L / n_t) + 1 <= k <= floor((j+1) L / n_t) + 1.
    for j in range(n_t):
        assert (counts[j] >= j * length // n_t + 1).all()
        assert (counts[j] <= (j + 1) * length // n_t + 1).all()
    torch.testing.assert_close(samples.weight, length / counts.double())


def test_unbiased_for_mask_independent_log_probs():
    log_probs = torch.randn(16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = build_estimator("stratified").draw(5000, 16, 3, torch.Generator().manual_seed(1))
    assert_agrees(estimates(samples, log_probs), log_probs.mean().item())


def test_matches_the_enumerated_elbo_and_rejects_a_wrong_weight():
    table = dependent_table()
    samples = build_estimator("stratified").draw(20000, LENGTH, 3, torch.Generator().manual_seed(2))
    target = exact_elbo(table)
    assert_agrees(estimates(samples, table), target)  # responses are independent replicates
    unweighted = MaskSamples(samples.mask, torch.ones_like(samples.weight))
    assert_rejected(estimates(unweighted, table), target)


def test_deterministic_for_a_fixed_generator():
    estimator = build_estimator("stratified")
    a = estimator.draw(8, 10, 3, torch.Generator().manual_seed(5))
    b = estimator.draw(8, 10, 3, torch.Generator().manual_seed(5))
    c = estimator.draw(8, 10, 3, torch.Generator().manual_seed(6))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.weight, b.weight)
    assert not torch.equal(a.mask, c.mask)


def test_has_no_settings():
    with pytest.raises(
        ConfigError, match="^estimator 'stratified' has no setting 'min_t'; its settings: none$"
    ):
        build_estimator("stratified", {"min_t": 0.1})
