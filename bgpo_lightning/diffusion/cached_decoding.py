"""The sampler's step loop for block-cached models (Fast-dLLM style prefix and dual caches).

With bidirectional attention every position depends on every other, so no cache is exact: the
keys and values of the positions outside the block are recomputed only at a refresh (always at a
block's first step, optionally every ``cache_refresh_steps`` steps) and reused, stale, by the
steps in between. This module decides when to refresh; the model side
(``bgpo_lightning.policy.block_cache``) decides what is cached and run. The step loop is the
exact path's own (``sampler.denoise_blocks``), so tokens are proposed and committed the same way
with the same random draws, and a cache refreshed at every step reproduces the exact sampler.
"""

from typing import Protocol

import torch

from bgpo_lightning.diffusion.sampler import (
    SamplerConfig,
    block_logits,
    denoise_blocks,
)


class BlockModel(Protocol):
    """A model that serves one block's logits, from scratch or from its cache."""

    def refresh(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Runs the full sequence ``x`` ``(B, L)``, rebuilds the cache for the block
        ``[start, end)`` and returns the block's logits ``(B, end - start, V)``."""
        ...

    def step(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Returns the block's logits ``(B, end - start, V)`` computed against the cache."""
        ...


def refreshes_at(step: int, refresh_steps: int | None) -> bool:
    """Whether a block's ``step`` (0-based) reruns the full sequence."""
    return step == 0 or (refresh_steps is not None and step % refresh_steps == 0)


@torch.no_grad()
def cached_generate(
    model: BlockModel,
    prompt_ids: torch.Tensor,
    mask_id: int,
    config: SamplerConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Generates like ``sampler.generate``, asking ``model`` for block logits.

    Args:
        model: Refreshes and steps through blocks (e.g. ``policy.block_cache.BlockKVCache``).
        prompt_ids: ``(B, P)`` integer prompt ids; must not contain ``mask_id``.
        mask_id: Id of the mask token; it is never generated.
        config: Sampler settings; ``cache_refresh_steps`` and ``threshold`` are honoured here.
        generator: Source of randomness; must be on ``prompt_ids.device``.

    Returns:
        ``(B, P + gen_length)`` tensor: the prompt followed by the generated response.
    """

    def from_cache(x: torch.Tensor, start: int, end: int, step: int) -> torch.Tensor:
        run = model.refresh if refreshes_at(step, config.cache_refresh_steps) else model.step
        logits = run(x, start, end)
        return block_logits(logits, x, mask_id, start, end, windowed=True, dtype=config.dtype)

    return denoise_blocks(prompt_ids, mask_id, config, generator, from_cache)
