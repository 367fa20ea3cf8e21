import pytest
import torch

from bgpo_lightning.diffusion.masking import apply_mask, draw_masks


def test_stratified_masks_exact_counts_one_per_stratum():
    gen = torch.Generator().manual_seed(0)
    n_t, length = 4, 12
    masks = draw_masks(50, length, n_t, "stratified", gen)
    counts = masks.mask.sum(-1)  # (n_t, N)
    assert counts.min() >= 1 and counts.max() <= length
    # Sample j's mask count lies in stratum j: floor(j L / n_t) + 1 <= k <= floor((j+1) L / n_t) + 1
    for j in range(n_t):
        assert (counts[j] >= j * length // n_t + 1).all()
        assert (counts[j] <= (j + 1) * length // n_t + 1).all()
    torch.testing.assert_close(masks.weight, length / counts.double())


def test_stratified_count_is_uniform_over_lengths():
    gen = torch.Generator().manual_seed(1)
    length = 5
    masks = draw_masks(20000, length, 1, "stratified", gen)
    freq = torch.bincount(masks.mask.sum(-1).flatten(), minlength=length + 1)[1:] / 20000
    torch.testing.assert_close(freq, torch.full((length,), 1 / length), atol=0.02, rtol=0)


def test_iid_mask_rate_matches_t():
    gen = torch.Generator().manual_seed(2)
    masks = draw_masks(4000, 64, 2, "iid", gen)
    t = 1 / masks.weight
    rate = masks.mask.double().mean(-1)
    assert (rate - t).abs().mean() < 0.05
    assert t.min() > 0 and t.max() <= 1


def test_masks_are_reproducible_from_the_generator():
    a = draw_masks(8, 10, 3, "stratified", torch.Generator().manual_seed(5))
    b = draw_masks(8, 10, 3, "stratified", torch.Generator().manual_seed(5))
    c = draw_masks(8, 10, 3, "stratified", torch.Generator().manual_seed(6))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.weight, b.weight)
    assert not torch.equal(a.mask, c.mask)


def test_apply_mask_never_touches_the_prompt():
    seq = torch.arange(20).view(2, 10)
    resp_mask = torch.ones(2, 4, dtype=torch.bool)
    noisy = apply_mask(seq, resp_mask, mask_id=99)
    assert torch.equal(noisy[:, :6], seq[:, :6])
    assert (noisy[:, 6:] == 99).all()
    assert torch.equal(seq, torch.arange(20).view(2, 10))  # input untouched


def test_unknown_sampler_is_named():
    with pytest.raises(ValueError, match="unknown timestep sampler 'uniform'"):
        draw_masks(2, 4, 1, "uniform")
