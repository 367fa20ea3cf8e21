"""Named sampler modes: a short name for the settings a mode changes in a ``SamplerConfig``.

A name is ``exact`` (no cache: the full sequence every step) or ``+``-joined parts, each at
most once:

- ``prefix`` / ``dual``: the block KV cache (``SamplerConfig.cache``); ``exact`` as a part
  means no cache;
- ``threshold<tau>``: confidence-threshold decoding at tau (``threshold``);
- ``refresh<k>``: with a cache, rerun the full sequence every k steps of a block
  (``cache_refresh_steps``);
- ``graph``: with ``dual``, replay the cached step as a CUDA graph (``cuda_graph``);
- ``f32``: the sampler's own work (logits, Gumbel noise, confidences) in float32 instead of
  float64 (``precision``);
- ``compile``: the model's forward through ``torch.compile`` while sampling (``compile``).

For example ``dual+threshold0.9`` is the dual cache with threshold decoding at tau = 0.9, and
``prefix+refresh1`` a prefix cache rerun at every step (the exact sampler's tokens).
"""

from __future__ import annotations

import argparse
import dataclasses
import re

from bgpo_lightning.diffusion.sampler import SamplerConfig

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(SamplerConfig)}
_PART = re.compile(
    r"(exact|prefix|dual)|threshold(\d+(?:\.\d*)?|\.\d+)|refresh(\d+)|(graph)|(f32)|(compile)"
)


@dataclasses.dataclass(frozen=True)
class RolloutMode:
    """A sampler mode: its name and the settings it changes in a ``SamplerConfig``."""

    name: str
    cache: str = "none"
    threshold: float | None = None
    refresh_steps: int | None = None
    cuda_graph: bool = False
    precision: str = "float64"
    compile: bool = False

    def settings(self) -> dict[str, object]:
        """The ``SamplerConfig`` fields this mode sets, under the config's field names."""
        return {
            "cache": self.cache,
            "threshold": self.threshold,
            "cache_refresh_steps": self.refresh_steps,
            "cuda_graph": self.cuda_graph,
            "precision": self.precision,
            "compile": self.compile,
        }

    def changed_settings(self) -> dict[str, object]:
        """Those of :meth:`settings` that differ from ``SamplerConfig``'s defaults."""
        return {k: v for k, v in self.settings().items() if v != _DEFAULTS[k]}

    def config(self, base: SamplerConfig) -> SamplerConfig:
        return dataclasses.replace(base, **self.settings())


def parse_mode(name: str) -> RolloutMode:
    """``RolloutMode`` of a name such as ``dual+threshold0.9``; ``ValueError`` if malformed."""
    cache, threshold, refresh, graph, seen = None, None, None, False, set()
    precision, compile_forward = "float64", False
    for part in name.split("+"):
        match = _PART.fullmatch(part)
        if match is None:
            raise ValueError(
                f"unknown part {part!r} of mode {name!r}: expected exact, prefix, dual, "
                "threshold<tau>, refresh<k>, graph, f32 or compile"
            )
        kind = match.group(1) or match.group(4) or match.group(5) or match.group(6)
        kind = kind or ("threshold" if match.group(2) else "refresh")
        key = "cache" if kind in ("exact", "prefix", "dual") else kind
        if key in seen:
            raise ValueError(f"mode {name!r} sets its {key} twice")
        seen.add(key)
        if key == "cache":
            cache = kind
        elif kind == "graph":
            graph = True
        elif kind == "f32":
            precision = "float32"
        elif kind == "compile":
            compile_forward = True
        elif kind == "threshold":
            threshold = float(match.group(2))
        else:
            refresh = int(match.group(3))
    if refresh is not None and cache not in ("prefix", "dual"):
        raise ValueError(f"mode {name!r}: refresh<k> needs prefix or dual")
    if graph and cache != "dual":
        raise ValueError(f"mode {name!r}: graph needs dual")
    cache = "none" if cache in (None, "exact") else cache
    return RolloutMode(name, cache, threshold, refresh, graph, precision, compile_forward)


def mode_argument(name: str) -> RolloutMode:
    """``parse_mode`` for argparse (a clean error message instead of a traceback)."""
    try:
        return parse_mode(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
