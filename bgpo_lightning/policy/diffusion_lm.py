"""The policy as the RL code sees it: token ids in, logits out, bidirectionally."""

from __future__ import annotations

import inspect

import torch
from torch import nn

# Config flag of models whose diffusion logits at position i are their outputs at i - 1
# (Dream, initialised from an autoregressive model); position 0 keeps its own.
SHIFTED_LOGITS_KEY = "bgpo_shifted_logits"


def shifts_logits(model: nn.Module) -> bool:
    """Whether ``model``'s config marks its logits as shifted (``SHIFTED_LOGITS_KEY``)."""
    return bool(getattr(getattr(model, "config", None), SHIFTED_LOGITS_KEY, False))


def padded_positions(keep: torch.Tensor) -> torch.Tensor:
    """Position ids ``(B, L)`` of a left-padded batch (``keep`` True at real tokens), counted
    from each row's first real token, as if the padding were not there."""
    return (keep.long().cumsum(dim=-1) - 1).clamp_min(0)


def padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``attention_mask`` if it hides a position, else None: without a mask attention runs its
    unmasked fused kernels. The check is a host-device sync, so a caller that runs many
    forwards on one mask (a sampler's step loop) calls this once and passes ``padded=True``."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask


def forward_parameters(model: nn.Module) -> set[str]:
    """Names of the keyword arguments ``model.forward`` takes.

    A peft wrapper passes its ``**kwargs`` on to the model it wraps, whose forward counts.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


class DiffusionLM(nn.Module):
    """Wraps a transformers model so every caller gets full-sequence bidirectional logits.

    Adapts to the model's forward: transformers models get a 4-D key mask and position ids,
    remote-code models without ``position_ids`` the usual 2-D mask. Models whose config says
    ``SHIFTED_LOGITS_KEY`` (Dream) have their logits shifted here, so callers never see the
    difference.

    Args:
        model: a transformers model whose attention is already bidirectional.
        mask_token_id: id of ``[MASK]``.
    """

    def __init__(self, model: nn.Module, mask_token_id: int) -> None:
        super().__init__()
        self.model = model
        self.mask_token_id = mask_token_id
        self.shifted_logits = shifts_logits(model)
        parameters = forward_parameters(model)
        # transformers' causal-LM heads can skip the output projection for unwanted positions;
        # remote-code models without the argument get their full logits sliced instead.
        self._model_slices_logits = "logits_to_keep" in parameters
        self._model_takes_positions = "position_ids" in parameters
        self._model_takes_mask = "attention_mask" in parameters
        self._model_takes_use_cache = "use_cache" in parameters

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        logits_to_keep: int | slice = 0,
        padded: bool = False,
    ) -> torch.Tensor:
        """Logits ``(N, T', V)`` of the kept positions.

        Args:
            input_ids: ``(N, T)``.
            attention_mask: ``(N, T)`` with 0 at (left) padding, or None for no padding.
            logits_to_keep: ``0`` for every position, ``k > 0`` for the last ``k`` (a response
                after its prompt), or a ``slice`` of non-negative positions (a sampler block).
                At LLaDA's vocabulary the output projection of unneeded positions is a large
                share of a forward's FLOPs and of the activations kept for backward.
            padded: ``attention_mask`` is known to hide a position (``padding_mask``), so the
                forward skips checking it, a host-device sync.
        """
        length = input_ids.shape[1]
        window = _as_slice(logits_to_keep)
        start, stop, _ = window.indices(length) if window is not None else (0, length, 1)
        if stop <= start:
            raise ValueError(f"logits_to_keep {logits_to_keep} keeps no position")
        kwargs = self._mask_arguments(attention_mask if padded else padding_mask(attention_mask))
        if self._model_takes_use_cache:
            kwargs["use_cache"] = False
        if not self.shifted_logits:
            return self._logits(input_ids, kwargs, start, stop)
        # Position i reads the output at i - 1, so the window starts one position earlier;
        # position 0 has no predecessor and keeps its own output. As in Dream's batched code,
        # a left-padded row's first real token (a prompt token: never scored) reads the pad's.
        logits = self._logits(input_ids, kwargs, max(start - 1, 0), max(stop - 1, 1))
        return logits if start > 0 else torch.cat([logits[:, :1], logits[:, : stop - 1]], dim=1)

    def _mask_arguments(self, attention_mask: torch.Tensor | None) -> dict:
        """The padding-related keyword arguments for the model's forward (``attention_mask``:
        None, or one that hides a position)."""
        if attention_mask is None:
            return {}
        if not self._model_takes_mask:
            raise ValueError(
                f"{type(self.model).__name__}.forward takes no attention_mask, so it cannot hide "
                "the padding of a padded batch"
            )
        if not self._model_takes_positions:
            # Remote-code models without position ids (LLaDA's own) take a 2-D key mask.
            return {"attention_mask": attention_mask}
        keep = attention_mask.bool()
        return {
            # transformers turns a 2-D mask into a causal one; a 4-D boolean key mask is used
            # as given, so padding is hidden while attention stays bidirectional.
            "attention_mask": keep[:, None, None, :].expand(-1, 1, keep.shape[1], -1),
            "position_ids": padded_positions(keep),
        }

    def _logits(self, input_ids: torch.Tensor, kwargs: dict, start: int, stop: int) -> torch.Tensor:
        """The model's own logits at positions ``start:stop``."""
        length = input_ids.shape[1]
        everything = (start, stop) == (0, length)
        if self._model_slices_logits and not everything:
            kwargs["logits_to_keep"] = (
                stop - start
                if stop == length
                else torch.arange(start, stop, device=input_ids.device)
            )
        out = self.model(input_ids=input_ids, **kwargs)
        logits = out.logits if hasattr(out, "logits") else out[0]
        if self._model_slices_logits or everything:
            return logits
        return logits[:, start:stop]


def _as_slice(logits_to_keep: int | slice) -> slice | None:
    """``None`` for all positions, else the slice of kept positions."""
    if isinstance(logits_to_keep, slice):
        if logits_to_keep.step not in (None, 1):
            raise ValueError(f"logits_to_keep slice must have step 1, got {logits_to_keep}")
        return logits_to_keep
    if logits_to_keep < 0:
        raise ValueError(f"logits_to_keep must be >= 0, got {logits_to_keep}")
    return slice(-logits_to_keep, None) if logits_to_keep else None
