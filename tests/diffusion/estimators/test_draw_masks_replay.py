"""``draw_masks`` must replay the masks of runs made before the registry, bit for bit."""

import pytest
import torch

from bgpo_lightning.diffusion.estimators import build_estimator
from bgpo_lightning.diffusion.masking import draw_masks


def old_draw_masks(num_responses, response_length, num_samples, sampler, generator, min_t=1e-3):
    """A frozen copy of the formula ``draw_masks`` used before the estimator registry."""
    shape = (num_samples, num_responses)
    scores = torch.rand(*shape, response_length, generator=generator)
    if sampler == "iid":
        t = torch.rand(shape, generator=generator, dtype=torch.float64)
        t = t * (1 - min_t) + min_t
        return scores < t.unsqueeze(-1), 1.0 / t
    offset = torch.rand(1, num_responses, generator=generator)
    strata = torch.arange(num_samples).unsqueeze(1)
    ratio = (strata + offset) / num_samples
    k = (ratio * response_length).floor().long().clamp_(0, response_length - 1) + 1
    ranks = scores.argsort(dim=-1).argsort(dim=-1)
    return ranks < k.unsqueeze(-1), response_length / k.to(torch.float64)


@pytest.mark.parametrize("sampler", ["stratified", "iid"])
@pytest.mark.parametrize(
    ("n", "length", "n_t", "seed"), [(1, 1, 1, 0), (8, 37, 4, 1), (3, 512, 16, 2)]
)
def test_draw_masks_replays_the_old_formula(sampler, n, length, n_t, seed):
    old_gen, new_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    for _ in range(2):  # and leaves the generator in the same state
        mask, weight = old_draw_masks(n, length, n_t, sampler, old_gen, min_t=0.01)
        samples = draw_masks(n, length, n_t, sampler, new_gen, min_t=0.01)
        assert torch.equal(samples.mask, mask)
        assert torch.equal(samples.weight, weight) and samples.weight.dtype == torch.float64
        torch.testing.assert_close(samples.coef, torch.full((n_t,), 1 / n_t, dtype=torch.float64))
        assert samples.prompt_mask is None
    assert torch.equal(old_gen.get_state(), new_gen.get_state())


def test_draw_masks_is_the_registered_estimator():
    settings = {"min_t": 0.02}
    direct = build_estimator("iid", settings).draw(4, 9, 3, torch.Generator().manual_seed(7))
    wrapped = draw_masks(4, 9, 3, "iid", torch.Generator().manual_seed(7), min_t=0.02)
    assert torch.equal(direct.mask, wrapped.mask) and torch.equal(direct.weight, wrapped.weight)


def test_draw_masks_keeps_its_errors():
    with pytest.raises(ValueError, match="unknown timestep sampler 'sdmc'"):
        draw_masks(2, 4, 1, "sdmc")
    with pytest.raises(ValueError, match="need num_samples >= 1 and response_length >= 1"):
        draw_masks(2, 4, 0)
