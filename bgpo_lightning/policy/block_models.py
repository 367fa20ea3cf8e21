"""Which block-cached model serves a sampler's cached mode."""

from __future__ import annotations

import torch

from bgpo_lightning.policy.block_cache import BlockKVCache
from bgpo_lightning.policy.diffusion_lm import DiffusionLM
from bgpo_lightning.policy.graphed_dual_cache import GraphedDualCache


def build_block_model(
    policy: DiffusionLM,
    attention_mask: torch.Tensor | None,
    cache: str,
    cuda_graph: bool = False,
) -> BlockKVCache | None:
    """The block model for ``SamplerConfig.cache``/``cuda_graph``; None for the exact sampler.

    Args:
        policy: The bidirectional policy.
        attention_mask: ``(B, L)`` over prompt + response with 0 at left padding, or None.
        cache: ``"none"``, ``"prefix"`` or ``"dual"``.
        cuda_graph: Replay the dual cache's step as a CUDA graph.
    """
    if cache == "none":
        return None
    if cuda_graph:
        if cache != "dual":
            raise ValueError(f"cuda_graph needs cache='dual', got {cache!r}")
        return GraphedDualCache(policy, attention_mask)
    return BlockKVCache(policy, attention_mask, cache)
