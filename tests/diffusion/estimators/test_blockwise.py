import pytest
import torch

from bgpo_lightning.diffusion.estimators import build_estimator
from bgpo_lightning.errors import ConfigError

BLOCK, BLOCKS = 4, 5
LENGTH = BLOCK * BLOCKS


def clean_context(**settings):
    return build_estimator("blockwise", {"block_length": BLOCK, "clean_mask_prob": 0.0, **settings})


def chosen_blocks(mask: torch.Tensor) -> torch.Tensor:
    """With a clean context, the chosen block is the first one with a masked token."""
    per_block = mask.view(*mask.shape[:-1], BLOCKS, BLOCK).any(-1)
    return per_block.double().argmax(-1)


def test_earlier_clean_chosen_partly_masked_later_fully_masked():
    samples = clean_context().draw(300, LENGTH, 3, torch.Generator().manual_seed(0))
    assert samples.mask.shape == (3, 300, LENGTH) and samples.weight.dtype == torch.float64
    blocks = samples.mask.view(3, 300, BLOCKS, BLOCK)
    chosen = chosen_blocks(samples.mask)
    index = torch.arange(BLOCKS)
    counts = blocks.sum(-1)  # (S, N, blocks)
    before, at, after = (
        index < chosen[..., None],
        index == chosen[..., None],
        index > chosen[..., None],
    )
    assert (counts[before] == 0).all()
    assert (counts[after] == BLOCK).all()
    assert ((counts[at] >= 1) & (counts[at] <= BLOCK)).all()
    torch.testing.assert_close(samples.weight, LENGTH / samples.mask.sum(-1).double())
    torch.testing.assert_close(samples.coef, torch.full((3,), 1 / 3, dtype=torch.float64))


def test_blocks_are_distinct_per_response_and_uniform():
    samples = clean_context().draw(4000, LENGTH, BLOCKS, torch.Generator().manual_seed(1))
    chosen = chosen_blocks(samples.mask)  # (S, N): a permutation of the blocks per response
    assert torch.equal(
        chosen.sort(dim=0).values, torch.arange(BLOCKS).unsqueeze(1).expand(-1, 4000)
    )
    first = torch.bincount(chosen[0], minlength=BLOCKS) / 4000
    torch.testing.assert_close(
        first, torch.full((BLOCKS,), 1 / BLOCKS, dtype=first.dtype), atol=0.03, rtol=0
    )


def test_more_draws_than_blocks_start_a_new_permutation():
    samples = clean_context().draw(50, LENGTH, BLOCKS + 2, torch.Generator().manual_seed(2))
    chosen = chosen_blocks(samples.mask)
    assert torch.equal(
        chosen[:BLOCKS].sort(dim=0).values, torch.arange(BLOCKS).unsqueeze(1).expand(-1, 50)
    )
    assert (chosen[BLOCKS] != chosen[BLOCKS + 1]).all()


def test_in_block_count_is_uniform_above_the_minimum():
    block = 8
    estimator = build_estimator(
        "blockwise", {"block_length": block, "min_t": 0.5, "clean_mask_prob": 0.0}
    )
    samples = estimator.draw(6000, block, 1, torch.Generator().manual_seed(3))  # one block
    counts = samples.mask.sum(-1).flatten()
    frequencies = torch.bincount(counts, minlength=block + 1).double() / counts.numel()
    assert (frequencies[:4] == 0).all()  # at least floor(0.5 * 8) = 4
    torch.testing.assert_close(
        frequencies[4:], torch.full((5,), 0.2, dtype=torch.float64), atol=0.02, rtol=0
    )


def test_clean_tokens_masked_with_the_clean_probability():
    # Same generator: the random numbers are consumed identically for any probability,
    # so the extra masks appear only in the prompt and in the blocks before the chosen one.
    args = (2000, LENGTH, 2)
    base = clean_context().draw(*args, torch.Generator().manual_seed(4), prompt_length=6)
    noisy = build_estimator("blockwise", {"block_length": BLOCK, "clean_mask_prob": 0.3}).draw(
        *args, torch.Generator().manual_seed(4), prompt_length=6
    )
    assert not base.prompt_mask.any()
    assert abs(noisy.prompt_mask.double().mean().item() - 0.3) < 0.01
    extra = noisy.mask & ~base.mask
    assert torch.equal(noisy.mask | base.mask, noisy.mask)
    earlier = torch.arange(LENGTH) // BLOCK < chosen_blocks(base.mask)[..., None]
    assert not extra[~earlier].any()
    assert abs(extra[earlier].double().mean().item() - 0.3) < 0.01
    torch.testing.assert_close(noisy.weight, LENGTH / noisy.mask.sum(-1).double())


def test_deterministic_for_a_fixed_generator():
    estimator = build_estimator("blockwise", {"block_length": BLOCK})
    a = estimator.draw(4, LENGTH, 2, torch.Generator().manual_seed(5), prompt_length=3)
    b = estimator.draw(4, LENGTH, 2, torch.Generator().manual_seed(5), prompt_length=3)
    c = estimator.draw(4, LENGTH, 2, torch.Generator().manual_seed(6), prompt_length=3)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.prompt_mask, b.prompt_mask)
    assert not torch.equal(a.mask, c.mask)


def test_length_must_be_a_multiple_of_the_block():
    with pytest.raises(
        ConfigError,
        match=r"^estimator 'blockwise' needs the response length \(30\) to be a multiple of "
        r"block_length \(32\)$",
    ):
        build_estimator("blockwise").draw(2, 30, 1, prompt_length=4)


def test_prompt_length_is_required_when_clean_tokens_are_masked():
    with pytest.raises(ValueError, match="masks the prompt: pass prompt_length >= 1"):
        build_estimator("blockwise").draw(2, 64, 1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"block_length": 0}, "estimator 'blockwise': block_length must be an integer >= 1, got 0"),
        ({"min_t": 1.0}, r"estimator 'blockwise': min_t must be in \[0.0, 1.0\), got 1.0"),
        (
            {"clean_mask_prob": -0.5},
            r"estimator 'blockwise': clean_mask_prob must be in \[0.0, 1.0\), got -0.5",
        ),
    ],
)
def test_bad_settings_are_one_line(settings, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        build_estimator("blockwise", settings)
