"""Loading a safetensors checkpoint into a transformers model whose weights are named differently.

The model is built on the meta device, so no random weights are allocated, and every tensor is
read lazily from its shard and assigned in place: an 8B checkpoint needs one copy in memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn
from transformers import PretrainedConfig

from bgpo_lightning.errors import ConfigError

REQUIRED = object()


def config_field(config: dict, name: str, config_file: Path, default: Any = REQUIRED) -> Any:
    """``config[name]``, ``default`` when absent, or a ConfigError naming the file if required."""
    if name in config and config[name] is not None:
        return config[name]
    if default is REQUIRED:
        raise ConfigError(f"{config_file} has no {name!r}")
    return default


def _pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(re.escape("{n}"), r"(?P<n>\d+)", 1))


class KeyMap:
    """A one-to-one renaming of weights, from ``(checkpoint, model)`` templates with ``{n}`` for a
    layer number, e.g. ``("blocks.{n}.attn_out.weight", "layers.{n}.self_attn.o_proj.weight")``."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        pairs = list(pairs)
        self._pairs = [(_pattern(checkpoint), model) for checkpoint, model in pairs]
        self._inverse = [(_pattern(model), checkpoint) for checkpoint, model in pairs]

    @staticmethod
    def _rename(rules: list[tuple[re.Pattern, str]], name: str) -> str | None:
        for pattern, template in rules:
            match = pattern.fullmatch(name)
            if match:
                return template.format(n=match.group("n")) if "{n}" in template else template
        return None

    def to_model(self, key: str) -> str | None:
        """The model's name for a checkpoint key, or None if the key is not a known weight."""
        return self._rename(self._pairs, key)

    def to_checkpoint(self, name: str) -> str:
        """The checkpoint key of a model weight (the name itself if no rule matches)."""
        return self._rename(self._inverse, name) or name


class SameNames(KeyMap):
    """Checkpoint and model name their weights alike."""

    def __init__(self) -> None:
        super().__init__([])

    def to_model(self, key: str) -> str:
        return key

    def to_checkpoint(self, name: str) -> str:
        return name


def safetensors_files(directory: Path) -> list[Path]:
    """The weight files: the shards named by ``model.safetensors.index.json``, else
    ``model.safetensors``."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as error:
            raise ConfigError(f"{index} is not a safetensors index ({error!r})") from error
        shards = [directory / name for name in sorted(set(weight_map.values()))]
        for shard in shards:
            if not shard.is_file():
                raise ConfigError(f"{index} names {shard.name!r}, which is not in {directory}")
        return shards
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    raise ConfigError(
        f"no safetensors weights in {directory} (model.safetensors or "
        "model.safetensors.index.json); convert .bin checkpoints to safetensors first"
    )


def load_renamed(
    model_class: Callable[[PretrainedConfig], nn.Module],
    config: PretrainedConfig,
    directory: Path,
    key_map: KeyMap,
    dtype: torch.dtype | None = None,
    dropped: frozenset[str] = frozenset(),
) -> nn.Module:
    """Builds ``model_class(config)`` with the weights of ``directory`` (in eval mode).

    Args:
        key_map: checkpoint key -> model parameter name.
        dtype: cast every weight to it; None keeps the checkpoint's.
        dropped: checkpoint keys that may be present and are not loaded (a tied output head).

    Every model parameter must come from the checkpoint and every checkpoint key must be a
    model parameter of the same shape: anything else is a ConfigError naming key and file.
    """
    with torch.device("meta"):
        model = model_class(config)
    expected = dict(model.named_parameters())
    weights: dict[str, torch.Tensor] = {}
    for shard in safetensors_files(directory):
        with safe_open(shard, framework="pt", device="cpu") as reader:
            for key in reader.keys():  # noqa: SIM118 (a reader, not a dict)
                if key in dropped:
                    continue
                name = key_map.to_model(key)
                if name not in expected or name in weights:
                    problem = "a second copy of" if name in weights else "unknown"
                    raise ConfigError(f"{problem} weight {key!r} in {shard}")
                tensor = reader.get_tensor(key)
                if tensor.shape != expected[name].shape:
                    raise ConfigError(
                        f"weight {key!r} in {shard} has shape {tuple(tensor.shape)}, "
                        f"the config says {tuple(expected[name].shape)}"
                    )
                weights[name] = tensor if dtype is None else tensor.to(dtype)
    for name in expected:
        if name not in weights:
            raise ConfigError(f"weight {key_map.to_checkpoint(name)!r} missing from {directory}")
    model.load_state_dict(weights, strict=False, assign=True)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()  # assign replaced the shared parameter on one side only
    _rebuild_meta_buffers(model)
    config.dtype = next(iter(weights.values())).dtype
    return model.eval()


def _rebuild_meta_buffers(model: nn.Module) -> None:
    """Recomputes buffers that are no checkpoint weights (RoPE frequencies), left on meta."""
    for name, module in list(model.named_modules()):
        if any(buffer.is_meta for buffer in module.buffers(recurse=False)):
            parent_name, _, attribute = name.rpartition(".")
            # Rotary embeddings (the only such modules of Llama/Qwen2) rebuild from the config.
            setattr(model.get_submodule(parent_name), attribute, type(module)(config=model.config))
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_meta:
            raise RuntimeError(f"{name} was not loaded")
