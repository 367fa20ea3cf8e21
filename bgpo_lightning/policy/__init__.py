"""The diffusion LM policy: building, loading, tokenizing."""

from bgpo_lightning.policy.block_cache import BlockKVCache
from bgpo_lightning.policy.bpe_tokenizer import train_bpe_tokenizer
from bgpo_lightning.policy.checkpointing import (
    disable_gradient_checkpointing,
    enable_gradient_checkpointing,
)
from bgpo_lightning.policy.diffusion_lm import DiffusionLM
from bgpo_lightning.policy.lora import LoraSpec, adapter_disabled, adapter_of, merged_model
from bgpo_lightning.policy.model import (
    TinyModelConfig,
    build_tiny_model,
    load_pretrained,
    make_bidirectional,
)
from bgpo_lightning.policy.reference import (
    AdapterDisabledReference,
    build_reference,
    frozen_copy,
    parse_reference_dtype,
)
from bgpo_lightning.policy.spec import PolicySpec, build_policy
from bgpo_lightning.policy.text import decode_responses, encode_prompts, encode_responses
from bgpo_lightning.policy.tokenizer import build_char_tokenizer

__all__ = [
    "AdapterDisabledReference",
    "BlockKVCache",
    "DiffusionLM",
    "LoraSpec",
    "PolicySpec",
    "TinyModelConfig",
    "adapter_disabled",
    "adapter_of",
    "build_char_tokenizer",
    "build_policy",
    "build_reference",
    "build_tiny_model",
    "decode_responses",
    "disable_gradient_checkpointing",
    "enable_gradient_checkpointing",
    "encode_prompts",
    "encode_responses",
    "frozen_copy",
    "load_pretrained",
    "make_bidirectional",
    "merged_model",
    "parse_reference_dtype",
    "train_bpe_tokenizer",
]
