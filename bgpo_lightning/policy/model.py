"""Building and loading bidirectional (masked diffusion) language models with transformers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy.bidirectional_sdpa import use_bidirectional_sdpa
from bgpo_lightning.policy.diffusion_lm import forward_parameters
from bgpo_lightning.policy.dream import is_dream_config, load_dream
from bgpo_lightning.policy.llada import is_llada_config, load_llada


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
    run the fused non-causal kernel. Where transformers builds a mask anyway (under
    ``torch.compile`` with torch < 2.14) ``config.is_causal = False`` makes it bidirectional,
    and SDPA models switch to ``bidirectional_sdpa``, which leaves that all-true mask out.
    Models with their own masking (LLaDA's remote code) have no such flag and are left as
    they are.
    """
    layers = [m for m in model.modules() if hasattr(m, "is_causal") and hasattr(m, "q_proj")]
    for layer in layers:
        layer.is_causal = False
    if layers and getattr(model, "config", None) is not None:
        model.config.is_causal = False
        use_bidirectional_sdpa(model)
    return model


def load_pretrained(
    path: str | Path, trust_remote_code: bool = False, dtype: torch.dtype | None = None
) -> nn.Module:
    """Loads a diffusion LM from a local Hugging Face directory (no hub access), bidirectional.

    LLaDA and Dream checkpoints are converted natively to transformers' Llama and Qwen2 (no
    remote code; see ``policy.llada``, ``policy.dream``). Other checkpoints (ours, saved
    conversions) load with their causal-LM class, remote-code models with
    ``trust_remote_code``.
    """
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"no Hugging Face model at {str(path)!r} (config.json not found)")
    try:
        raw_config = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{config_file} is not JSON: {error}") from error
    if is_llada_config(raw_config):
        model = load_llada(path, raw_config, dtype)
    elif is_dream_config(raw_config):
        model = load_dream(path, raw_config, dtype)
    else:
        model = _load_generic(path, trust_remote_code, dtype)
    return make_bidirectional(model)


def _load_generic(path: Path, trust_remote_code: bool, dtype: torch.dtype | None) -> nn.Module:
    """Loads with transformers' auto classes; refuses models that cannot hide padding."""
    kwargs = {"dtype": dtype} if dtype is not None else {}
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
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
    except AttributeError as error:
        if "all_tied_weights_keys" not in str(error):
            raise
        raise ConfigError(
            f"the remote modelling code in {path} never calls post_init(), which transformers "
            f"{transformers.__version__} needs; a LLaDA checkpoint loads natively "
            "(model_type 'llada' in config.json, no trust_remote_code)"
        ) from error
    if "attention_mask" not in forward_parameters(model):
        raise ConfigError(
            f"the model in {path} ({type(model).__name__}) takes no attention_mask, so it "
            "cannot hide the left padding of a batch"
        )
    return model
