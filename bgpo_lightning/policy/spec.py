"""What policy to use: the embedded tiny model or a local Hugging Face checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy.checkpointing import enable_gradient_checkpointing
from bgpo_lightning.policy.diffusion_lm import DiffusionLM
from bgpo_lightning.policy.lora import LoraSpec, add_lora
from bgpo_lightning.policy.model import TinyModelConfig, build_tiny_model, load_pretrained
from bgpo_lightning.policy.tokenizer import build_char_tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class PolicySpec:
    """Where the policy comes from.

    Attributes:
        path: local directory of a Hugging Face model; None builds the embedded tiny model
            with a character tokenizer (random weights: warm-start it with SFT first).
        tokenizer_path: tokenizer directory; defaults to ``path``.
        trust_remote_code: allow the checkpoint's own modelling code (LLaDA ships some).
        mask_token_id: id of ``[MASK]``; defaults to the tokenizer's mask token.
        dtype: weights' dtype when loading (``float32``, ``bfloat16``, ``float16``); None keeps
            the checkpoint's. Mixed precision is the Trainer's ``precision`` setting.
        tiny: shape of the embedded model when ``path`` is None.
        gradient_checkpointing: recompute each decoder layer during backward instead of
            keeping its activations (non-reentrant; training mode only).
        lora: train a LoRA adapter (peft) instead of every weight; the KL reference is then
            the base model with the adapter disabled. None trains every weight.
    """

    path: str | None = None
    tokenizer_path: str | None = None
    trust_remote_code: bool = False
    mask_token_id: int | None = None
    dtype: str | None = None
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    gradient_checkpointing: bool = False
    lora: LoraSpec | None = None

    def __post_init__(self) -> None:
        # Hyperparameters saved in a checkpoint come back as plain dictionaries.
        if isinstance(self.lora, dict):
            self.lora = LoraSpec(**self.lora)


def build_policy(spec: PolicySpec) -> tuple[DiffusionLM, PreTrainedTokenizerBase]:
    """Builds or loads the policy and its tokenizer as ``spec`` says."""
    if spec.dtype is not None and spec.dtype not in DTYPES:
        raise ConfigError(f"unknown policy.dtype {spec.dtype!r}; choose one of: {list(DTYPES)}")
    if spec.path is None:
        tokenizer = (
            AutoTokenizer.from_pretrained(spec.tokenizer_path)
            if spec.tokenizer_path
            else build_char_tokenizer()
        )
        model = build_tiny_model(
            len(tokenizer),
            spec.tiny,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    else:
        dtype = DTYPES[spec.dtype] if spec.dtype else None
        model = load_pretrained(spec.path, spec.trust_remote_code, dtype)
        tokenizer_path = spec.tokenizer_path or spec.path
        tokenizer = AutoTokenizer.from_pretrained(
            tokenizer_path, trust_remote_code=spec.trust_remote_code, local_files_only=True
        )
    # The checkpoint's config names its ids (LLaDA-8B: mask 126336, EOS 126081), else the
    # tokenizer does; callers read the EOS id from the tokenizer, so it follows the config.
    config = getattr(model, "config", None)
    mask_id = spec.mask_token_id
    if mask_id is None:
        mask_id = getattr(config, "mask_token_id", None)
    if mask_id is None:
        mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise ConfigError(
            f"tokenizer at {spec.tokenizer_path or spec.path!r} has no mask token; "
            "set policy.mask_token_id (LLaDA: 126336)"
        )
    if config is not None and getattr(config, "mask_token_id", None) != mask_id:
        config.mask_token_id = mask_id  # saved with the model: a reload uses the same id
    eos_id = getattr(config, "eos_token_id", None)
    if isinstance(eos_id, int) and eos_id != tokenizer.eos_token_id:
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_id)
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"tokenizer at {spec.tokenizer_path or spec.path!r} has no EOS token")
    policy = DiffusionLM(model, mask_id)
    if spec.lora is not None:
        add_lora(policy, spec.lora)
    if spec.gradient_checkpointing:
        enable_gradient_checkpointing(policy.model)
    return policy, tokenizer
