"""The sampler's step loop for block-cached models (Fast-dLLM style prefix and dual caches).

With bidirectional attention every position depends on every other, so no cache is exact: the
keys and values of the positions outside the block are recomputed only at a refresh (always at a
block's first step, optionally every ``cache_refresh_steps`` steps) and reused, stale, by the
steps in between. The loop here decides when to refresh; the model side
(``bgpo_lightning.policy.block_cache``) decides what is cached and run. Tokens are proposed and
committed exactly as in ``sampler.generate`` and the random draws are the same, so a cache
refreshed at every step reproduces the exact sampler.
"""

from typing import Protocol

import torch

from bgpo_lightning.diffusion.sampler import (
    SamplerConfig,
    block_done,
    block_logits_float64,
    check_sampler_inputs,
    commit_step,
    unmask_schedule,
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
    check_sampler_inputs(prompt_ids, mask_id, generator)
    batch, prompt_len = prompt_ids.shape
    x = prompt_ids.new_full((batch, prompt_len + config.gen_length), mask_id)
    x[:, :prompt_len] = prompt_ids

    for block in range(config.num_blocks):
        start = prompt_len + block * config.block_length
        end = start + config.block_length
        schedule = unmask_schedule((x[:, start:end] == mask_id).sum(-1), config.steps_per_block)
        for step in range(config.steps_per_block):
            if refreshes_at(step, config.cache_refresh_steps):
                raw = model.refresh(x, start, end)
            else:
                raw = model.step(x, start, end)
            logits = block_logits_float64(raw, x, mask_id, start, end, windowed=True)
            commit_step(x, logits, mask_id, start, end, schedule[:, step], config, generator)
            if config.threshold is not None and block_done(x, mask_id, start, end):
                break
    return x
