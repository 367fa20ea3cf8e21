"""LLaDA checkpoints (``model_type: "llada"``) loaded natively as a transformers Llama.

LLaDA's "llama" block is a Llama decoder layer under other names: RMSNorm, RoPE (rotate-half),
``silu(ff_proj(x)) * up_proj(x)`` through ``ff_out``, no biases, an untied output head, and no
causal mask. Its own remote code is not needed (transformers 5 cannot run it: it never calls
``post_init``), has no gradient checkpointing, and ignores padding; the Llama class has all that.
Variants that are not a plain Llama are refused rather than loaded wrong.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy.native_loading import KeyMap, config_field, load_renamed

LLADA_KEYS = KeyMap(
    [
        ("model.transformer.wte.weight", "model.embed_tokens.weight"),
        ("model.transformer.ln_f.weight", "model.norm.weight"),
        ("model.transformer.ff_out.weight", "lm_head.weight"),
        *(
            (f"model.transformer.blocks.{{n}}.{llada}.weight", f"model.layers.{{n}}.{llama}.weight")
            for llada, llama in [
                ("q_proj", "self_attn.q_proj"),
                ("k_proj", "self_attn.k_proj"),
                ("v_proj", "self_attn.v_proj"),
                ("attn_out", "self_attn.o_proj"),
                ("ff_proj", "mlp.gate_proj"),
                ("up_proj", "mlp.up_proj"),
                ("ff_out", "mlp.down_proj"),
                ("attn_norm", "input_layernorm"),
                ("ff_norm", "post_attention_layernorm"),
            ]
        ),
    ]
)

# The settings a plain Llama needs, and LLaDA's defaults where config.json leaves one out
# (LLaDA's own code falls back to these too, so an absent field means the default variant).
REQUIRED_SETTINGS: dict[str, tuple[object, object]] = {
    # name: (required value, LLaDA's default)
    "block_type": ("llama", "sequential"),
    "alibi": (False, False),
    "rope": (True, False),
    "include_bias": (False, False),
    "include_qkv_bias": (False, False),
    "weight_tying": (False, True),
    "layer_norm_type": ("rms", "default"),
    "layer_norm_with_affine": (True, True),
    "activation_type": ("silu", "swiglu"),
    "attention_layer_norm": (False, False),
    "scale_logits": (False, False),
    "input_emb_norm": (False, False),
    "block_group_size": (1, 1),
    "clip_qkv": (None, None),
}


def is_llada_config(config: dict) -> bool:
    """Whether a raw ``config.json`` is LLaDA's."""
    return str(config.get("model_type", "")).lower() == "llada"


def llama_config_from_llada(config: dict, config_file: Path) -> LlamaConfig:
    """The Llama config of a LLaDA ``config.json``; ConfigError for variants Llama is not."""
    for name, (required, default) in REQUIRED_SETTINGS.items():
        value = config.get(name, default)
        if value != required and not (required is False and value is None):
            absent = "" if name in config else " (absent: LLaDA's default)"
            raise ConfigError(
                f"{config_file}: LLaDA with {name}={value!r}{absent} is not supported natively "
                f"(needs {required!r})"
            )
    if config.get("bias_for_layer_norm"):
        raise ConfigError(f"{config_file}: LLaDA with bias_for_layer_norm is not supported")
    hidden = config_field(config, "d_model", config_file)
    heads = config_field(config, "n_heads", config_file)
    kv_heads = config.get("n_kv_heads") or (1 if config.get("multi_query_attention") else heads)
    vocab = config.get("embedding_size") or config_field(config, "vocab_size", config_file)
    llama = LlamaConfig(
        vocab_size=vocab,  # the output head has embedding_size rows, as in LLaDA's code
        hidden_size=hidden,
        intermediate_size=config.get("mlp_hidden_size") or config.get("mlp_ratio", 4) * hidden,
        num_hidden_layers=config_field(config, "n_layers", config_file),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=config.get("max_sequence_length", 1024),
        rope_theta=float(config.get("rope_theta", 10000.0)),
        rms_norm_eps=float(config.get("rms_norm_eps", 1e-5)),
        initializer_range=config.get("init_std", 0.02),
        hidden_act="silu",
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        attn_implementation="sdpa",
        pad_token_id=config.get("pad_token_id"),
        eos_token_id=config.get("eos_token_id"),
        bos_token_id=config.get("bos_token_id"),
    )
    llama.mask_token_id = config.get("mask_token_id")  # kept through save_pretrained
    return llama


def load_llada(directory: Path, config: dict, dtype: torch.dtype | None = None) -> nn.Module:
    """A ``LlamaForCausalLM`` with the weights of a LLaDA checkpoint (still causal: the caller
    makes it bidirectional)."""
    llama = llama_config_from_llada(config, directory / "config.json")
    return load_renamed(LlamaForCausalLM, llama, directory, LLADA_KEYS, dtype)
