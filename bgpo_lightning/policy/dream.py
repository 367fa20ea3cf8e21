"""Dream checkpoints (``model_type: "Dream"``) loaded natively as a transformers Qwen2.

Dream is a Qwen2 (q/k/v biases, grouped-query attention) run without a causal mask. Initialised
from an autoregressive model, it predicts token ``i`` at position ``i - 1``: its diffusion logits
are its outputs shifted right by one. The loaded model records that in its config
(``SHIFTED_LOGITS_KEY``), so ``DiffusionLM`` shifts, and a saved copy reloads shifted.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy.diffusion_lm import SHIFTED_LOGITS_KEY
from bgpo_lightning.policy.native_loading import SameNames, config_field, load_renamed


def is_dream_config(config: dict) -> bool:
    """Whether a raw ``config.json`` is Dream's."""
    architectures = config.get("architectures") or []
    return str(config.get("model_type", "")).lower() == "dream" or "DreamModel" in architectures


def qwen2_config_from_dream(config: dict, config_file: Path) -> Qwen2Config:
    """The Qwen2 config of a Dream ``config.json``; ConfigError for what Qwen2 would run
    differently."""
    if config.get("rope_scaling"):
        raise ConfigError(f"{config_file}: Dream with rope_scaling is not supported natively")
    if config.get("use_sliding_window"):
        raise ConfigError(f"{config_file}: Dream with use_sliding_window is not supported")
    qwen2 = Qwen2Config(
        vocab_size=config_field(config, "vocab_size", config_file),
        hidden_size=config_field(config, "hidden_size", config_file),
        intermediate_size=config_field(config, "intermediate_size", config_file),
        num_hidden_layers=config_field(config, "num_hidden_layers", config_file),
        num_attention_heads=config_field(config, "num_attention_heads", config_file),
        num_key_value_heads=config_field(config, "num_key_value_heads", config_file),
        hidden_act=config.get("hidden_act", "silu"),
        max_position_embeddings=config.get("max_position_embeddings", 32768),
        rope_theta=float(config.get("rope_theta", 10000.0)),
        rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        initializer_range=config.get("initializer_range", 0.02),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        attention_dropout=config.get("attention_dropout", 0.0),
        attn_implementation="sdpa",
        pad_token_id=config.get("pad_token_id"),
        eos_token_id=config.get("eos_token_id"),
        bos_token_id=config.get("bos_token_id"),
    )
    qwen2.mask_token_id = config.get("mask_token_id")  # kept through save_pretrained
    setattr(qwen2, SHIFTED_LOGITS_KEY, True)
    return qwen2


def load_dream(directory: Path, config: dict, dtype: torch.dtype | None = None) -> nn.Module:
    """A ``Qwen2ForCausalLM`` with the weights of a Dream checkpoint, its config marked shifted
    (still causal: the caller makes it bidirectional)."""
    qwen2 = qwen2_config_from_dream(config, directory / "config.json")
    # A tied head may still be stored; the embedding is loaded and the head tied to it.
    dropped = frozenset({"lm_head.weight"}) if qwen2.tie_word_embeddings else frozenset()
    return load_renamed(Qwen2ForCausalLM, qwen2, directory, SameNames(), dtype, dropped)
