"""Which SDPA kernel a compiled graph calls, with and without pinning the fused backends.

For plain SDPA calls at the rollout's shapes, and for a two-layer 1b-shaped policy forward, it
prints the attention operators of the ATen graph that ``torch.compile`` hands to inductor, and
for the plain calls the time per call eager and through inductor. On a GPU each case also runs
with the math backend switched off (``sdpa_kernel`` over cuDNN, flash and efficient), which
makes a refused fused kernel an error that says why:

    python -m experiments.gpu_benchmark.sdpa_graph --model-attention sdpa

``--model-attention sdpa`` is transformers' own SDPA attention (what built models used before
``bgpo_lightning.policy.bidirectional_sdpa``); ``sdpa_bidirectional`` is the project's. On a
CPU it runs small shapes, a smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time

import torch
import torch.nn.functional as F
from torch._functorch.aot_autograd import aot_module_simplified
from torch.nn.attention import SDPBackend, sdpa_kernel

from bgpo_lightning.policy.bidirectional_sdpa import NAME
from experiments.gpu_benchmark.__main__ import build_policy
from experiments.gpu_benchmark.shapes import SHAPES

FUSED = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
ATTENTION_OPS = ("attention", "bmm", "softmax")  # fused kernels, or the math path's pieces


def attention(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False)


def aten_attention_ops(fn, *args) -> list[str]:
    """The attention operators of the ATen graph ``torch.compile`` makes of ``fn(*args)``."""
    seen = set()

    def record(graph, _inputs):
        for node in graph.graph.nodes:
            if node.op == "call_function" and any(s in str(node.target) for s in ATTENTION_OPS):
                seen.add(str(node.target))
        return graph.forward

    def backend(graph, inputs):
        return aot_module_simplified(graph, inputs, fw_compiler=record)

    torch.compiler.reset()
    torch.compile(fn, backend=backend)(*args)
    return sorted(seen)


def per_call_ms(fn, *args, reps: int = 20) -> float:
    for _ in range(3):
        fn(*args)
    _synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        fn(*args)
    _synchronize()
    return (time.perf_counter() - start) / reps * 1e3


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _pinnings(device: str) -> tuple[bool, ...]:
    return (False, True) if device == "cuda" else (False,)


def _pinned(pinned: bool):
    return sdpa_kernel(FUSED, set_priority=True) if pinned else contextlib.nullcontext()


def plain_calls(device: str) -> None:
    rows, heads, dim = (16, 16, 128) if device == "cuda" else (2, 2, 16)
    cases = {  # (queries, keys, padding mask)
        "full 768, no mask": (768, 768, False),
        "full 768, bool pad mask": (768, 768, True),
        "query 32 vs keys 768, no mask": (32, 768, False),
        "query 32 vs keys 768, bool pad mask": (32, 768, True),
    }
    for name, (queries, keys, padded) in cases.items():
        q = torch.randn(rows, heads, queries, dim, device=device, dtype=torch.bfloat16)
        k = torch.randn(rows, heads, keys, dim, device=device, dtype=torch.bfloat16)
        v = torch.randn_like(k)
        mask = None
        if padded:
            mask = torch.ones(rows, 1, 1, keys, device=device, dtype=torch.bool)
            mask[:, :, :, :7] = False
        for pinned in _pinnings(device):
            with _pinned(pinned):
                ops = aten_attention_ops(attention, q, k, v, mask)
                torch.compiler.reset()
                eager_ms = per_call_ms(attention, q, k, v, mask)
                compiled_ms = per_call_ms(torch.compile(attention), q, k, v, mask)
            print(
                f"{name} | pinned={pinned} | eager {eager_ms:.3f} ms | "
                f"inductor {compiled_ms:.3f} ms | aten {ops}",
                flush=True,
            )


def model_forward(device: str, model_attention: str) -> None:
    """The attention operators of a compiled 2-layer 1b-shaped forward (16 x 768, no padding)."""
    shape = dataclasses.replace(SHAPES["1b"], layers=2) if device == "cuda" else SHAPES["tiny"]
    policy = build_policy(shape, 1024, 0, torch.device(device)).eval()
    policy.model.set_attn_implementation(model_attention)
    ids = torch.randint(0, shape.vocab - 2, (16, 768), device=device)
    for pinned in _pinnings(device):
        with _pinned(pinned), torch.no_grad():
            try:
                ops = aten_attention_ops(lambda x: policy.model(input_ids=x).logits, ids)
            except Exception as error:  # a pinned run refusing every fused kernel says why
                ops = f"error: {type(error).__name__}: {' '.join(str(error).split())[:600]}"
        line = f"model forward 16x768 ({model_attention}) | pinned={pinned} | aten {ops}"
        print(line, flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-attention", choices=["sdpa", NAME], default="sdpa")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    plain_calls(device)
    model_forward(device, args.model_attention)


if __name__ == "__main__":
    main()
