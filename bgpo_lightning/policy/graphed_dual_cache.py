"""The dual block cache with a step of fixed shapes and addresses, replayed as a CUDA graph.

With a dual cache every step of every block has the same shapes: the block's ``W`` tokens attend
to ``L - W`` cached keys (everything before and after the block) plus their own. Only *which*
positions form the block changes, so the positions are gathered through index tensors and the
cached keys and values live in buffers that every refresh overwrites in place. The step's whole
forward then reads and writes the same memory at every call, and on a GPU it is captured once
per rollout as a CUDA graph and replayed: a cached step of a small model is otherwise dominated
by launching its few hundred small kernels from Python, not by the GPU's work.

The arithmetic is ``BlockKVCache(mode="dual")``'s, in the same order, so both give the same
logits; off CUDA the same static step runs eagerly. For a policy with shifted logits (Dream) the
step's queries are the block and the position before it, as in ``BlockKVCache``, so every block
after the first prompt token has the same shapes too.
"""

from __future__ import annotations

import torch

from bgpo_lightning.policy.block_cache import BlockKVCache
from bgpo_lightning.policy.diffusion_lm import DiffusionLM


class _StaticContext:
    """Keys and values of the context and the block, per layer, in fixed buffers.

    Each layer's buffer holds the context positions (all but the block's, ``index``) followed
    by the block's. While recording, ``update`` writes the full sequence's context positions
    into the buffers and returns the keys and values unchanged (a plain forward). A step writes
    the block's new keys and values behind the context and attends to the whole buffer: the
    same keys in the same order as ``BlockKVCache``'s concatenation, without copying the
    context at every step (that copy was a fifth of a 1b step's GPU time).
    """

    def __init__(self, index: torch.Tensor) -> None:
        self.index = index
        self.recording = True
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        context = self.index.numel()
        if self.recording:
            for kept, states in ((self.keys, key_states), (self.values, value_states)):
                if layer_idx not in kept:  # [context | block]: the sequence's shape
                    kept[layer_idx] = torch.empty_like(states)
                kept[layer_idx][:, :, :context].copy_(states.index_select(2, self.index))
            return key_states, value_states
        self.keys[layer_idx][:, :, context:].copy_(key_states)
        self.values[layer_idx][:, :, context:].copy_(value_states)
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0 if self.recording else self.index.numel()


class GraphedDualCache(BlockKVCache):
    """A dual ``BlockKVCache`` whose steps replay one CUDA graph per rollout.

    Implements ``bgpo_lightning.diffusion.cached_decoding.BlockModel``.

    Args:
        policy: The bidirectional policy (see ``BlockKVCache``).
        attention_mask: ``(B, L)`` with 0 at left padding, or None.
        graph: Capture the step as a CUDA graph; None does so on CUDA devices. False runs the
            same static step eagerly.
    """

    serves_shifted_logits = True

    def __init__(
        self,
        policy: DiffusionLM,
        attention_mask: torch.Tensor | None,
        graph: bool | None = None,
    ) -> None:
        super().__init__(policy, attention_mask, "dual")
        self.graph = graph
        self._static: dict[str, torch.Tensor] = {}
        self._cache: _StaticContext | None = None
        self._captured: torch.cuda.CUDAGraph | None = None
        self._logits: torch.Tensor | None = None

    def refresh(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Runs the full sequence, refills the context buffers, returns the block's logits."""
        if start < self.shift:
            raise ValueError("a shifted policy's graphed dual cache needs a token before the block")
        keep, positions = self._keep_and_positions(x)
        first = self._first_query(start)
        # The step's queries [first, end), and the context in BlockKVCache's order.
        queries = torch.arange(first, end, device=x.device)
        context = self._context_positions(x.shape[1], first, end, x.device)
        if self._static and self._static["x"].shape != x.shape:
            raise ValueError(f"sequence shape changed from {tuple(self._static['x'].shape)}")
        if self._static and self._static["queries"].shape != queries.shape:
            raise ValueError(f"block length changed from {self._width()} to {end - start}")
        if not self._static:
            self._static = {"x": torch.empty_like(x), "queries": queries, "context": context}
            self._cache = _StaticContext(self._static["context"])
        # In place: the captured step reads these addresses.
        self._static["queries"].copy_(queries)
        self._static["context"].copy_(context)
        self._set_static("positions", positions.index_select(1, queries))
        key_mask = torch.cat([keep.index_select(1, context), keep.index_select(1, queries)], 1)
        self._set_static("key_mask", key_mask)
        self._cache.recording = True
        logits = self._run(
            x, positions, keep, self._cache, self._logit_sources(start, end, x.device)
        )
        self._cache.recording = False
        self._block = (start, end)
        return logits

    def _width(self) -> int:
        """The block's length: the step's queries less the position rerun before it."""
        return self._static["queries"].numel() - self.shift

    def _set_static(self, name: str, value: torch.Tensor) -> None:
        if name in self._static:
            self._static[name].copy_(value)
        else:
            self._static[name] = value.clone()

    def _static_step(self) -> torch.Tensor:
        """The step's forward, reading only the static buffers."""
        static = self._static
        ids = static["x"].index_select(1, static["queries"])
        # The block's logits are the first `width` queries' outputs, shifted or not.
        block = torch.arange(self._width(), device=ids.device)
        return self._run(ids, static["positions"], static["key_mask"], self._cache, block)

    def step(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """The block's logits against the context kept at the last refresh.

        On a GPU the returned tensor is the graph's output buffer: the next step overwrites it,
        so use it (the sampler copies it, in its precision) before stepping again.
        """
        if self._cache is None or self._block != (start, end):
            raise RuntimeError(f"step for block {(start, end)} without a refresh of that block")
        self._static["x"].copy_(x)
        use_graph = x.device.type == "cuda" if self.graph is None else self.graph
        if not use_graph:
            return self._static_step()
        if self._captured is None:
            self._capture()
        self._captured.replay()
        return self._logits

    def _capture(self) -> None:
        # Warm up on a side stream (lazy library initialisation must not be captured).
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._static_step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._logits = self._static_step()
        self._captured = graph
