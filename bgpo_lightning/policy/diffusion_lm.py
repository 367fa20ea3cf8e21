"""The policy as the RL code sees it: token ids in, logits out, bidirectionally."""

from __future__ import annotations

import inspect

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
        # transformers' causal-LM heads can skip the output projection for unwanted positions;
        # remote-code models without the argument get their full logits sliced instead.
        self._model_slices_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        logits_to_keep: int | slice = 0,
    ) -> torch.Tensor:
        """Logits ``(N, T', V)`` of the kept positions.

        Args:
            input_ids: ``(N, T)``.
            attention_mask: ``(N, T)`` with 0 at (left) padding, or None for no padding.
            logits_to_keep: ``0`` for every position, ``k > 0`` for the last ``k`` (a response
                after its prompt), or a ``slice`` of non-negative positions (a sampler block).
                At LLaDA's vocabulary the output projection of unneeded positions is a large
                share of a forward's FLOPs and of the activations kept for backward.
        """
        kwargs = {}
        if attention_mask is not None and not bool(attention_mask.all()):
            keep = attention_mask.bool()
            # transformers turns a 2-D mask into a causal one; a 4-D boolean key mask is used
            # as given, so padding is hidden while attention stays bidirectional.
            kwargs["attention_mask"] = keep[:, None, None, :].expand(-1, 1, keep.shape[1], -1)
            # Positions count from the first real token, as if the padding were not there.
            kwargs["position_ids"] = (keep.long().cumsum(dim=-1) - 1).clamp_min(0)
        window = _as_slice(logits_to_keep)
        if window is not None:
            start, stop, _ = window.indices(input_ids.shape[1])
            if stop <= start:
                raise ValueError(f"logits_to_keep {logits_to_keep} keeps no position")
            if self._model_slices_logits:
                kwargs["logits_to_keep"] = (
                    stop - start
                    if stop == input_ids.shape[1]
                    else torch.arange(start, stop, device=input_ids.device)
                )
                window = None
        out = self.model(input_ids=input_ids, use_cache=False, **kwargs)
        logits = out.logits if hasattr(out, "logits") else out[0]
        return logits if window is None else logits[:, window]


def _as_slice(logits_to_keep: int | slice) -> slice | None:
    """``None`` for all positions, else the slice of kept positions."""
    if isinstance(logits_to_keep, slice):
        if logits_to_keep.step not in (None, 1):
            raise ValueError(f"logits_to_keep slice must have step 1, got {logits_to_keep}")
        return logits_to_keep
    if logits_to_keep < 0:
        raise ValueError(f"logits_to_keep must be >= 0, got {logits_to_keep}")
    return slice(-logits_to_keep, None) if logits_to_keep else None
