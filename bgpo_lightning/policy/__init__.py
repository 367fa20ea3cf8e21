"""The diffusion LM policy: building, loading, tokenizing."""

from bgpo_lightning.policy.block_cache import BlockKVCache
from bgpo_lightning.policy.diffusion_lm import DiffusionLM
from bgpo_lightning.policy.model import (
    TinyModelConfig,
    build_tiny_model,
    load_pretrained,
    make_bidirectional,
)
from bgpo_lightning.policy.reference import frozen_copy
from bgpo_lightning.policy.spec import PolicySpec, build_policy
from bgpo_lightning.policy.text import decode_responses, encode_prompts, encode_responses
from bgpo_lightning.policy.tokenizer import build_char_tokenizer

__all__ = [
    "BlockKVCache",
    "DiffusionLM",
    "PolicySpec",
    "TinyModelConfig",
    "build_char_tokenizer",
    "build_policy",
    "build_tiny_model",
    "decode_responses",
    "encode_prompts",
    "encode_responses",
    "frozen_copy",
    "load_pretrained",
    "make_bidirectional",
]
