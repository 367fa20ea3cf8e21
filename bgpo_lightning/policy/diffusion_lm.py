"""The policy as the RL code sees it: token ids in, logits out, bidirectionally."""

from __future__ import annotations

import torch
from torch import nn


class DiffusionLM(nn.Module):
    """Wraps a transformers model so every caller gets full-sequence bidirectional logits.

    Args:
        model: a transformers model whose attention is already bidirectional.
        mask_token_id: id of ``[MASK]``.
    """

    def __init__(self, model: nn.Module, mask_token_id: int) -> None:
        super().__init__()
        self.model = model
        self.mask_token_id = mask_token_id

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(N, T, V)``.

        Args:
            input_ids: ``(N, T)``.
            attention_mask: ``(N, T)`` with 0 at (left) padding, or None for no padding.
        """
        kwargs = {}
        if attention_mask is not None and not bool(attention_mask.all()):
            keep = attention_mask.bool()
            # transformers turns a 2-D mask into a causal one; a 4-D boolean key mask is used
            # as given, so padding is hidden while attention stays bidirectional.
            kwargs["attention_mask"] = keep[:, None, None, :].expand(-1, 1, keep.shape[1], -1)
            # Positions count from the first real token, as if the padding were not there.
            kwargs["position_ids"] = (keep.long().cumsum(dim=-1) - 1).clamp_min(0)
        out = self.model(input_ids=input_ids, use_cache=False, **kwargs)
        return out.logits if hasattr(out, "logits") else out[0]
