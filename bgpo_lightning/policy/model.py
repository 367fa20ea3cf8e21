"""Building and loading bidirectional (masked diffusion) language models with transformers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from bgpo_lightning.errors import ConfigError


@dataclass
class TinyModelConfig:
    """Shape of the embedded default: a LLaDA-shaped Llama (RMSNorm, RoPE, SwiGLU, no biases,
    untied output head, bidirectional attention), small enough for a CPU."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    max_position_embeddings: int = 512
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5
    initializer_range: float = 0.02


def build_tiny_model(vocab_size: int, config: TinyModelConfig, **special_ids: int) -> nn.Module:
    """A randomly initialised LLaDA-shaped model (``special_ids``: pad/eos token ids)."""
    llama_config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_position_embeddings,
        rope_theta=config.rope_theta,
        rms_norm_eps=config.rms_norm_eps,
        initializer_range=config.initializer_range,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        attn_implementation="sdpa",
        pad_token_id=special_ids.get("pad_token_id"),
        eos_token_id=special_ids.get("eos_token_id"),
        bos_token_id=None,
    )
    llama_config.bgpo_tiny = asdict(config)  # kept in config.json for the record
    return make_bidirectional(LlamaForCausalLM(llama_config))


def make_bidirectional(model: nn.Module) -> nn.Module:
    """Turns off the causal mask of every attention layer of a transformers decoder.

    transformers' SDPA/flash paths honour ``module.is_causal``; with no padding mask they then
    run the fused non-causal kernel. Models with their own masking (LLaDA's remote code) have
    no such flag and are left as they are.
    """
    for module in model.modules():
        if hasattr(module, "is_causal") and hasattr(module, "q_proj"):
            module.is_causal = False
    return model


def load_pretrained(
    path: str | Path, trust_remote_code: bool = False, dtype: torch.dtype | None = None
) -> nn.Module:
    """Loads a diffusion LM from a local Hugging Face directory (no hub access).

    Llama/Qwen2-shaped checkpoints (ours, converted LLaDA, Dream) are loaded with the
    causal-LM class and made bidirectional; LLaDA's own remote code with ``trust_remote_code``.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"no Hugging Face model at {str(path)!r} (config.json not found)")
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path,
            config=config,
            trust_remote_code=trust_remote_code,
            local_files_only=True,
            **kwargs,
        )
    except ValueError:
        # Some remote-code dLLMs register only AutoModel.
        model = AutoModel.from_pretrained(
            path,
            config=config,
            trust_remote_code=trust_remote_code,
            local_files_only=True,
            **kwargs,
        )
    return make_bidirectional(model)
