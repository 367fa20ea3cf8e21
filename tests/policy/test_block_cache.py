"""Tests of the model side of block KV caching (tiny float64 Llama, left padding)."""

import pytest
import torch
from torch import nn

from bgpo_lightning.policy import BlockKVCache, DiffusionLM
from tests.helpers import random_sequences, tiny_policy

PROMPT, RESPONSE, BLOCK = 6, 12, 4


@pytest.fixture(scope="module")
def policy() -> DiffusionLM:
    return tiny_policy(seed=2).eval()


def _batch(policy: DiffusionLM) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded sequences with a partly decoded response, and their attention mask."""
    x = random_sequences(3, PROMPT, RESPONSE, seed=4)
    mask = torch.ones_like(x)
    for row, pad in enumerate([2, 0, 4]):
        x[row, :pad] = 0
        mask[row, :pad] = 0
    masked = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) < 0.6
    masked[:, :PROMPT] = False
    return x.masked_fill(masked, policy.mask_token_id), mask


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("block", [0, 1, 2])
def test_cached_step_equals_the_full_forward_when_nothing_changed(
    policy: DiffusionLM, mode: str, block: int
) -> None:
    x, mask = _batch(policy)
    start = PROMPT + block * BLOCK
    end = start + BLOCK
    cache = BlockKVCache(policy, mask, mode)
    with torch.no_grad():
        full = policy(x, mask)[:, start:end]
        refreshed = cache.refresh(x, start, end)
        stepped = cache.step(x, start, end)
    assert stepped.shape == full.shape == refreshed.shape
    torch.testing.assert_close(refreshed, full, rtol=0, atol=1e-10)
    torch.testing.assert_close(stepped, full, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_step_sees_the_block_but_not_the_cached_context(policy: DiffusionLM, mode: str) -> None:
    x, mask = _batch(policy)
    start, end = PROMPT + BLOCK, PROMPT + 2 * BLOCK
    cache = BlockKVCache(policy, mask, mode)
    with torch.no_grad():
        cache.refresh(x, start, end)
        before = cache.step(x, start, end)

        def step_after(position: int) -> torch.Tensor:
            y = x.clone()
            y[:, position] = 50
            return cache.step(y, start, end)

        assert torch.equal(step_after(PROMPT), before), "the cached prefix was recomputed"
        assert not torch.equal(step_after(start + 1), before), "the block is not rerun"
        # The suffix is rerun by the prefix cache and frozen by the dual cache.
        assert torch.equal(step_after(end + 1), before) == (mode == "dual")


def test_padding_stays_hidden(policy: DiffusionLM) -> None:
    x, mask = _batch(policy)
    start, end = PROMPT, PROMPT + BLOCK
    y = x.clone()
    y[mask == 0] = 77  # other padding tokens change nothing
    for mode in ("prefix", "dual"):
        first, second = BlockKVCache(policy, mask, mode), BlockKVCache(policy, mask, mode)
        with torch.no_grad():
            first.refresh(x, start, end)
            second.refresh(y, start, end)
            torch.testing.assert_close(
                first.step(x, start, end), second.step(y, start, end), rtol=0, atol=1e-12
            )


def test_misuse_is_reported(policy: DiffusionLM) -> None:
    x, mask = _batch(policy)
    cache = BlockKVCache(policy, mask, "dual")
    with torch.no_grad(), pytest.raises(RuntimeError, match="refresh"):
        cache.step(x, PROMPT, PROMPT + BLOCK)
    with torch.no_grad():
        cache.refresh(x, PROMPT, PROMPT + BLOCK)
    with torch.no_grad(), pytest.raises(RuntimeError, match="refresh"):
        cache.step(x, PROMPT + BLOCK, PROMPT + 2 * BLOCK)
    with pytest.raises(ValueError, match="attention_mask"):
        BlockKVCache(policy, mask[:, 1:], "prefix").refresh(x, PROMPT, PROMPT + BLOCK)
    with pytest.raises(ValueError, match="mode"):
        BlockKVCache(policy, mask, "none")

    class NoCache(nn.Module):
        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return input_ids

    with pytest.raises(ValueError, match="cache"):
        BlockKVCache(DiffusionLM(NoCache(), 0), mask, "prefix")


def test_a_compiled_dual_cache_compiles_nothing_after_its_first_block(
    policy: DiffusionLM, traced_graphs: list
) -> None:
    """Later blocks differ from the first only in their bounds, which reach the compiled forward
    as a tensor of context positions, so they reuse the refresh's and the step's graphs."""
    x, mask = _batch(policy)
    graphs = traced_graphs
    torch.compiler.reset()
    cache = BlockKVCache(policy, mask, "dual")
    cache.model = torch.compile(cache.model)
    compiled_after_first = None
    with torch.no_grad():
        for block in range(RESPONSE // BLOCK):
            start = PROMPT + block * BLOCK
            refreshed = cache.refresh(x, start, start + BLOCK)
            stepped = cache.step(x, start, start + BLOCK)
            torch.testing.assert_close(stepped, refreshed, rtol=0, atol=1e-10)
            compiled_after_first = compiled_after_first or len(graphs)
    torch.compiler.reset()
    assert compiled_after_first > 0
    assert len(graphs) == compiled_after_first


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_a_compiled_cache_serves_the_eager_caches_logits(policy: DiffusionLM, mode: str) -> None:
    """Compiled, the refresh keeps every position's keys and values and the step picks the
    context out of them; the logits are the eager cache's, stale context included."""
    x, mask = _batch(policy)
    changed = x.clone()
    changed[:, PROMPT:] = 50  # what the steps see differs from what the refresh cached

    def run(cache: BlockKVCache) -> list[torch.Tensor]:
        logits = []
        with torch.no_grad():
            for block in range(RESPONSE // BLOCK):
                start = PROMPT + block * BLOCK
                logits.append(cache.refresh(x, start, start + BLOCK))
                logits.append(cache.step(changed, start, start + BLOCK))
        return logits

    eager = run(BlockKVCache(policy, mask, mode))
    compiled_cache = BlockKVCache(policy, mask, mode)
    # The eager backend runs the traced graph as it is: the same operations, traced.
    compiled_cache.model = torch.compile(compiled_cache.model, backend="eager")
    torch.compiler.reset()
    try:
        compiled = run(compiled_cache)
        kept = compiled_cache._context.keys[0].shape[2]
    finally:
        torch.compiler.reset()
    assert kept == x.shape[1]  # the compiled refresh kept every position
    assert not torch.equal(eager[1], eager[0])  # the steps' changes reach the logits
    for got, expected in zip(compiled, eager, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
