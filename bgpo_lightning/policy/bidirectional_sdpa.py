"""transformers' SDPA attention, minus the all-visible mask it builds under ``torch.compile``.

With no padding, a bidirectional model needs no attention mask, and transformers leaves it out
unless it might be exporting. With torch < 2.14 dynamo reports every compiled forward as an
export (fixed by pytorch#176499), so compiled forwards get an all-true mask expanded from a
scalar. Its last dimension has stride 0, which every fused CUDA kernel refuses, so SDPA falls
back to its float32 math path: on an H200 compiled rollouts ran slower than eager ones.

This registers the same attention function under another name, with a mask builder that
returns no mask in exactly that case (no padding mask, the plain bidirectional mask function,
no attention window) and defers to transformers' builder otherwise.
"""

from __future__ import annotations

from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import (
    AttentionMaskInterface,
    bidirectional_mask_function,
    sdpa_mask,
)

NAME = "sdpa_bidirectional"


def bidirectional_sdpa_mask(*args, **kwargs):
    """``sdpa_mask``, but ``None`` wherever the mask could only be all true."""
    if (
        not args
        and kwargs.get("attention_mask") is None
        and kwargs.get("mask_function") is bidirectional_mask_function
        and kwargs.get("local_size") is None
    ):
        return None
    return sdpa_mask(*args, **kwargs)


AttentionInterface.register(NAME, sdpa_attention_forward)
AttentionMaskInterface.register(NAME, bidirectional_sdpa_mask)


def use_bidirectional_sdpa(model: nn.Module) -> None:
    """Switches a transformers model on SDPA to ``NAME``; any other attention is left alone."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) == "sdpa":
        model.set_attn_implementation(NAME)
