"""Streaming gradient statistics against references computed from stored copies."""

import math

import pytest
import torch

from bgpo_lightning.callbacks.running_moments import (
    RunningMoments,
    cosine_similarity,
    relative_error,
)


def draws(repeats: int, numel: int = 257, seed: int = 0) -> torch.Tensor:
    """Gradient-like draws: a common mean, a small per-entry spread of varying size."""
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(numel, generator=gen, dtype=torch.float64)
    scale = torch.rand(numel, generator=gen, dtype=torch.float64) * 1e-3
    return mean + scale * torch.randn(repeats, numel, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("repeats", [2, 3, 8])
def test_moments_match_stored_copy_reference(repeats):
    stored = draws(repeats)
    reference = stored[0] + 0.1
    moments = RunningMoments(stored.shape[1])
    for row in stored:
        moments.update(row.clone(), reference=reference)
    torch.testing.assert_close(moments.mean, stored.mean(dim=0), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(
        moments.variance(), stored.var(dim=0, unbiased=True), rtol=1e-9, atol=1e-20
    )
    expected_std = stored.std(dim=0, unbiased=True).mean().item()
    assert moments.mean_std() == pytest.approx(expected_std, rel=1e-9)
    cosines = torch.nn.functional.cosine_similarity(stored, reference.expand_as(stored), dim=1)
    assert moments.mean_cosine == pytest.approx(cosines.mean().item(), rel=1e-12)


def test_variance_does_not_cancel_when_spread_is_tiny_next_to_mean():
    # sum x^2 - R mean^2 would lose every digit here; the streamed form keeps them.
    stored = 1e4 + 1e-6 * torch.randn(6, 50, generator=torch.Generator().manual_seed(1)).double()
    moments = RunningMoments(50)
    for row in stored:
        moments.update(row.clone())
    torch.testing.assert_close(moments.variance(), stored.var(dim=0), rtol=1e-6, atol=0)


def test_buffers_are_reused_whatever_the_number_of_draws():
    moments = RunningMoments(10)
    pointers = (moments.mean.data_ptr(), moments.m2.data_ptr())
    for repeats in (2, 7):
        moments.reset()
        for row in draws(repeats, numel=10):
            moments.update(row.clone())
        assert moments.count == repeats
        assert (moments.mean.data_ptr(), moments.m2.data_ptr()) == pointers
    assert moments.mean.dtype == moments.m2.dtype == torch.float64


def test_bias_and_cosine_definitions():
    golden = torch.tensor([3.0, 4.0], dtype=torch.float64)
    estimate = torch.tensor([3.0, 5.0], dtype=torch.float64)
    assert relative_error(estimate, golden) == pytest.approx(1 / 5)
    assert cosine_similarity(estimate, golden) == pytest.approx(29 / (5 * math.sqrt(34)))
    assert cosine_similarity(-golden, golden) == pytest.approx(-1)
    zero = torch.zeros(2, dtype=torch.float64)
    assert math.isnan(relative_error(estimate, zero)) and math.isnan(
        cosine_similarity(zero, golden)
    )


def test_std_needs_two_draws():
    moments = RunningMoments(3)
    moments.update(torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 draws"):
        moments.mean_std()
