"""Block key/value caching for the project's bidirectional transformers models (Llama-shaped).

A refresh runs the whole sequence once and keeps the keys and values (already rotated by RoPE)
of the positions outside the current block: before it (``"prefix"``), or before and after it
(``"dual"``). A step then runs only the block (``"dual"``), or the block and everything after it
(``"prefix"``, as in Fast-dLLM), with attention over the kept keys plus its own. Attention stays
bidirectional and left padding stays hidden because every call gets explicit position ids and a
4-D boolean key mask, which transformers uses as given.

The cache is handed to the model as its ``cache``/``past_key_values`` argument: the attention
layers call its ``update`` with their new keys and values and attend to what it returns.

A policy with shifted logits (Dream) reads position ``i``'s logits from the output at ``i - 1``,
so for it the position just before the block is rerun with the block instead of being cached.
"""

from __future__ import annotations

from typing import Literal

import torch
from peft import PeftModel
from torch import nn

from bgpo_lightning.policy.diffusion_lm import DiffusionLM, forward_parameters, padded_positions


class _ContextKeyValues:
    """Keys and values of the context positions, per layer, as a transformers cache sees them.

    While recording, ``update`` keeps the context positions of the full sequence's keys and
    values and returns them unchanged (a plain forward). Afterwards it prepends the kept
    context to the new tokens' keys and values and stores nothing, so every step sees the same
    context. The context's keys come first, in the order of ``context``.

    ``context`` is a tensor of positions, not slices: a compiled forward then guards on its
    length only, which the dual cache keeps from block to block, rather than on each block's
    bounds, which recompiled it at every block.

    Under ``torch.compile`` the refresh keeps every position's keys and values and the step
    picks the context out of them (inductor fuses that gather into the concatenation). A
    gather at the refresh is what inductor put at the end of the compiled graph, so every
    layer's full keys and values stayed alive beside the kept context: a second cache at the
    peak (docs/benchmarks.md, "The compiled dual cache's extra memory").
    """

    def __init__(self, context: torch.Tensor) -> None:
        self.context = context
        self.recording = True
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Called by every attention layer with its ``(B, H, T, D)`` keys and values."""
        if self.recording:
            if torch.compiler.is_compiling():  # kept whole, the context picked at the step
                self.keys[layer_idx], self.values[layer_idx] = key_states, value_states
            else:
                self.keys[layer_idx] = key_states.index_select(2, self.context)
                self.values[layer_idx] = value_states.index_select(2, self.context)
            return key_states, value_states
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if keys.shape[2] != self.context.numel():  # kept whole by a compiled refresh
            keys, values = keys.index_select(2, self.context), values.index_select(2, self.context)
        return torch.cat([keys, key_states], dim=2), torch.cat([values, value_states], dim=2)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Tokens seen before the new ones (transformers 4.x asks to place cache positions)."""
        return 0 if self.recording else self.context.numel()


class BlockKVCache:
    """Serves a sampler's block logits from a policy, caching what lies outside the block.

    Implements ``bgpo_lightning.diffusion.cached_decoding.BlockModel``.

    Args:
        policy: The bidirectional policy; its transformers model must take a key/value cache
            (Llama/Qwen2-shaped models built or loaded by ``policy.model``).
        attention_mask: ``(B, L)`` with 0 at left padding, over prompt + response, or None.
        mode: ``"prefix"`` or ``"dual"`` (see the module docstring).
    """

    serves_shifted_logits = False  # for subclasses with their own refresh or step

    def __init__(
        self,
        policy: DiffusionLM,
        attention_mask: torch.Tensor | None,
        mode: Literal["prefix", "dual"],
    ) -> None:
        if mode not in ("prefix", "dual"):
            raise ValueError(f"mode must be 'prefix' or 'dual', got {mode!r}")
        self.model = _transformers_model(policy.model)
        self.mode = mode
        self.attention_mask = attention_mask
        self.shift = 1 if policy.shifted_logits else 0
        overridden = (type(self).refresh, type(self).step) != (
            BlockKVCache.refresh,
            BlockKVCache.step,
        )
        # A subclass with its own refresh or step must say it honours the shift.
        if self.shift and overridden and not type(self).serves_shifted_logits:
            raise ValueError(f"{type(self).__name__} cannot serve shifted logits (Dream)")
        parameters = forward_parameters(self.model)
        # transformers 5 renamed `past_key_values` to `cache` (the old name still works a while).
        if "cache" in parameters:
            self._cache_argument = "cache"
        elif "past_key_values" in parameters:
            self._cache_argument = "past_key_values"
        else:
            raise ValueError(f"{type(self.model).__name__} takes no key/value cache")
        if "logits_to_keep" not in parameters:
            raise ValueError(f"{type(self.model).__name__} cannot keep only the block's logits")
        self._context: _ContextKeyValues | None = None
        self._block: tuple[int, int] | None = None

    def _keep_and_positions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, L)`` key mask and position ids, counted from the first real token as in
        ``DiffusionLM``."""
        if self.attention_mask is None:
            keep = torch.ones_like(x, dtype=torch.bool)
        else:
            if self.attention_mask.shape != x.shape:
                raise ValueError(
                    f"attention_mask {tuple(self.attention_mask.shape)} does not match the "
                    f"sequence {tuple(x.shape)}"
                )
            keep = self.attention_mask.bool()
        return keep, padded_positions(keep)

    def _run(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        key_mask: torch.Tensor,
        cache: _ContextKeyValues,
        logits_to_keep: torch.Tensor | int,
    ) -> torch.Tensor:
        """One forward of ``ids`` against ``cache``; ``key_mask`` ``(B, K)`` covers all keys."""
        # A 4-D mask is used as given (a 2-D one would be made causal): every query sees every
        # unpadded key.
        mask = key_mask[:, None, None, :].expand(-1, 1, ids.shape[1], -1)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=logits_to_keep,
            **{self._cache_argument: cache},
        )
        return out.logits if hasattr(out, "logits") else out[0]

    def _context_positions(
        self, length: int, start: int, end: int, device: torch.device
    ) -> torch.Tensor:
        before = torch.arange(start, device=device)
        if self.mode == "prefix":
            return before
        return torch.cat([before, torch.arange(end, length, device=device)])

    def _first_query(self, start: int) -> int:
        """First position a step reruns: the block's, or the one before it for shifted logits."""
        return start - min(self.shift, start)

    def _logit_sources(self, start: int, end: int, device: torch.device) -> torch.Tensor:
        """Positions whose outputs are the block's logits (``DiffusionLM``'s shift)."""
        return (torch.arange(start, end, device=device) - self.shift).clamp_min(0)

    def refresh(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Runs the full sequence, keeps the context's keys/values, returns the block's logits."""
        keep, positions = self._keep_and_positions(x)
        context = self._context_positions(x.shape[1], self._first_query(start), end, x.device)
        self._context = _ContextKeyValues(context)
        block = self._logit_sources(start, end, x.device)
        logits = self._run(x, positions, keep, self._context, block)
        self._context.recording = False
        self._block = (start, end)
        return logits

    def step(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """The block's logits from the current tokens of the block (and, for ``"prefix"``, of
        the suffix), attending to the context kept at the last refresh."""
        if self._context is None or self._block != (start, end):
            raise RuntimeError(f"step for block {(start, end)} without a refresh of that block")
        keep, positions = self._keep_and_positions(x)
        first = self._first_query(start)
        stop = x.shape[1] if self.mode == "prefix" else end
        context_mask = keep.index_select(1, self._context.context)
        key_mask = torch.cat([context_mask, keep[:, first:stop]], dim=1)
        # The queries start at `first`, so the block's logits come first.
        block = self._logit_sources(start, end, x.device) - first
        return self._run(x[:, first:stop], positions[:, first:stop], key_mask, self._context, block)


def _transformers_model(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper, which hides its cache arguments behind
    ``**kwargs``. LoRA layers live inside that model, so calling it still runs the adapter.
    (``build_policy`` keeps the bare model in ``DiffusionLM`` already.)"""
    return model.get_base_model() if isinstance(model, PeftModel) else model
