"""An independent plain-torch forward of a bidirectional pre-norm RoPE decoder, and checkpoint
writing, for the tests of native LLaDA and Dream loading.

Written from the published architectures (LLaDA's "llama" block, Qwen2/Dream), not from
transformers: RMSNorm, RoPE as a rotation of the pairs ``(i, i + D/2)``, softmax attention over
every key (or only earlier ones, to show a causal model would be told apart), the SwiGLU MLP.
It runs in float64 on one unpadded row at a time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file


@dataclass
class Block:
    """One decoder layer's tensors, by role (biases None where the model has none)."""

    attn_norm: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    o: torch.Tensor
    mlp_norm: torch.Tensor
    gate: torch.Tensor
    up: torch.Tensor
    down: torch.Tensor
    q_bias: torch.Tensor | None = None
    k_bias: torch.Tensor | None = None
    v_bias: torch.Tensor | None = None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def rotate(x: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE on ``(H, T, D)``: dims ``i`` and ``i + D/2`` turn by ``t * theta**(-2i/D)``."""
    half = x.shape[-1] // 2
    exponent = torch.arange(half, dtype=torch.float64) * 2 / x.shape[-1]
    angle = torch.arange(x.shape[1], dtype=torch.float64)[:, None] * theta**-exponent
    first, second = x[..., :half], x[..., half:]
    return torch.cat(
        [
            first * angle.cos() - second * angle.sin(),
            second * angle.cos() + first * angle.sin(),
        ],
        dim=-1,
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    y = x @ weight.double().T
    return y if bias is None else y + bias.double()


def decoder_outputs(
    ids: torch.Tensor,
    embed: torch.Tensor,
    blocks: list[Block],
    final_norm: torch.Tensor,
    head: torch.Tensor,
    heads: int,
    kv_heads: int,
    eps: float,
    theta: float,
    causal: bool = False,
    rotary: bool = True,
) -> torch.Tensor:
    """Outputs ``(T, V)`` of one unpadded row ``ids`` ``(T,)``, in float64."""
    x = embed.double()[ids]
    length, hidden = x.shape
    dim = hidden // heads
    allowed = torch.ones(length, length, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    for block in blocks:
        h = rms_norm(x, block.attn_norm.double(), eps)
        q = linear(h, block.q, block.q_bias).view(length, heads, dim).transpose(0, 1)
        k = linear(h, block.k, block.k_bias).view(length, kv_heads, dim).transpose(0, 1)
        v = linear(h, block.v, block.v_bias).view(length, kv_heads, dim).transpose(0, 1)
        if rotary:
            q, k = rotate(q, theta), rotate(k, theta)
        group = heads // kv_heads  # query head j reads key/value head j // group
        k, v = k.repeat_interleave(group, dim=0), v.repeat_interleave(group, dim=0)
        scores = (q @ k.transpose(1, 2) / math.sqrt(dim)).masked_fill(~allowed, -math.inf)
        attended = (scores.softmax(-1) @ v).transpose(0, 1).reshape(length, hidden)
        x = x + linear(attended, block.o, None)
        h = rms_norm(x, block.mlp_norm.double(), eps)
        gated = torch.nn.functional.silu(linear(h, block.gate, None)) * linear(h, block.up, None)
        x = x + linear(gated, block.down, None)
    return linear(rms_norm(x, final_norm.double(), eps), head, None)


def random_tensors(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """float32 tensors scaled so that logits vary by O(1): a wrong wiring shows plainly."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=gen)
        if "norm" in name or "ln_f" in name:
            tensors[name] = 1 + 0.1 * noise
        elif name.endswith(".bias"):
            tensors[name] = 0.2 * noise
        elif "wte" in name or "embed_tokens" in name:
            tensors[name] = noise
        else:
            tensors[name] = noise / math.sqrt(shape[1])
    return tensors


def write_checkpoint(
    directory: Path, config: dict, tensors: dict[str, torch.Tensor], shards: int = 1
) -> Path:
    """Writes ``config.json`` and the tensors as safetensors (``shards`` > 1: with an index)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    names = list(tensors)
    if shards == 1:
        save_file(tensors, directory / "model.safetensors")
        return directory
    weight_map = {}
    for index in range(shards):
        file = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        part = names[index::shards]
        save_file({name: tensors[name] for name in part}, directory / file)
        weight_map.update(dict.fromkeys(part, file))
    index_file = directory / "model.safetensors.index.json"
    index_file.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return directory
