"""Small builders shared by the tests."""

from __future__ import annotations

import torch

from bgpo_lightning.policy import (
    DiffusionLM,
    TinyModelConfig,
    build_char_tokenizer,
    build_tiny_model,
)

TINY = TinyModelConfig(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32)


def tiny_policy(dtype: torch.dtype = torch.float64, seed: int = 0) -> DiffusionLM:
    """A 2-layer LLaDA-shaped model over the character vocabulary."""
    tokenizer = build_char_tokenizer()
    torch.manual_seed(seed)
    model = build_tiny_model(len(tokenizer), TINY).to(dtype)
    return DiffusionLM(model, tokenizer.mask_token_id)


def random_sequences(n: int, prompt: int, response: int, seed: int = 0) -> torch.Tensor:
    """Random ordinary (non-special) tokens, ``(n, prompt + response)``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(4, 100, (n, prompt + response), generator=gen)


def join_as_rank(local_rank: int, world: int, port: int) -> None:
    """Sets the environment torchrun gives a rank on one node, so Lightning joins its group."""
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        NODE_RANK="0",
        LOCAL_RANK=str(local_rank),
        RANK=str(local_rank),
    )
