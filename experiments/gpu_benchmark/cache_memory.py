"""Peak memory of the block caches' forwards, eager against compiled.

    python -m experiments.gpu_benchmark.cache_memory --out docs/benchmarks/cache_memory_cpu

Runs the first blocks of a rollout's model calls (each block: a refresh, then steps) through
``BlockKVCache`` for each cache mode, eager and under ``torch.compile``, after two warm-up runs,
and reports the peak of the memory torch allocates during a measured run: on CUDA
``torch.cuda.max_memory_allocated`` above what was allocated before it, on the CPU the running
sum of the profiler's allocation and free events. The cache's own size is the keys and values
of every position but the block's (what the dual cache keeps). Writes ``cache_memory.md``
(also printed) under ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bgpo_lightning.diffusion.sampler import CACHE_MODES
from bgpo_lightning.policy import DiffusionLM, TinyModelConfig, build_tiny_model
from bgpo_lightning.policy.block_cache import BlockKVCache
from bgpo_lightning.policy.compiled_forward import compiled_forward
from experiments.gpu_benchmark.report import cell


def run_blocks(policy: DiffusionLM, mode: str, x: torch.Tensor, args, compiled: bool) -> None:
    """Refreshes and steps through the first ``--blocks`` blocks of the response with a new
    cache, so nothing a run keeps outlives it (the CPU count needs every free's allocation)."""
    cache = BlockKVCache(policy, None, mode)
    with torch.no_grad(), compiled_forward(cache.model, compiled):
        for block in range(args.blocks):
            start = args.prompt_length + block * args.block_length
            cache.refresh(x, start, start + args.block_length)
            for _ in range(args.steps_per_block - 1):
                cache.step(x, start, start + args.block_length)


def peak_bytes(fn, device: torch.device) -> int:
    """Peak bytes allocated while ``fn`` runs, above what was allocated before."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # The raw event list: allocations carry their size, frees the negative of it, in time
    # order (the public summaries fold them into per-operator totals, which have no peak).
    sizes = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    live = peak = 0
    for _, size in sizes:
        live += size
        peak = max(peak, live)
    return peak


def measure(args) -> list[dict]:
    """One row per (mode, compiled): peak MiB and its ratio to the eager run of the mode."""
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    length = args.prompt_length + args.gen_length
    config = TinyModelConfig(
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        intermediate_size=args.intermediate_size,
        max_position_embeddings=length,
    )
    torch.manual_seed(0)
    model = build_tiny_model(args.vocab_size, config).to(device, dtype).eval()
    policy = DiffusionLM(model, args.vocab_size - 1)
    x = torch.randint(0, args.vocab_size - 1, (args.rows, length), device=device)
    element = torch.finfo(dtype).bits // 8
    kept = length - args.block_length
    cache_bytes = 2 * args.num_layers * args.rows * kept * args.hidden_size * element
    rows = []
    for mode in args.modes:
        for compiled in (False, True):  # eager first: the compiled row's reference
            torch.compiler.reset()
            for _ in range(2):  # compiles, then settles the allocator
                run_blocks(policy, mode, x, args, compiled)
            peak = peak_bytes(lambda m=mode, c=compiled: run_blocks(policy, m, x, args, c), device)
            if not compiled:
                eager_peak = peak
            rows.append(
                {
                    "mode": mode,
                    "compiled": compiled,
                    "peak_mib": peak / 2**20,
                    "cache_mib": cache_bytes / 2**20,
                    "over_eager": peak / eager_peak,
                }
            )
    torch.compiler.reset()
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| mode | compile | peak MiB | dual cache MiB | peak / eager peak |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {'yes' if r['compiled'] else 'no'} | {cell(r['peak_mib'], 3)} | "
            f"{cell(r['cache_mib'], 3)} | {cell(r['over_eager'], 2)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--out", type=Path, required=True)
    cached = [mode for mode in CACHE_MODES if mode != "none"]
    cli.add_argument("--modes", nargs="+", choices=cached, default=cached)
    cli.add_argument("--device", default="cpu")
    cli.add_argument("--dtype", default="float32")
    cli.add_argument("--rows", type=int, default=64)
    cli.add_argument("--prompt-length", type=int, default=64)
    cli.add_argument("--gen-length", type=int, default=256)
    cli.add_argument("--block-length", type=int, default=32)
    cli.add_argument("--blocks", type=int, default=3)
    cli.add_argument("--steps-per-block", type=int, default=3)
    cli.add_argument("--hidden-size", type=int, default=256)
    cli.add_argument("--num-layers", type=int, default=4)
    cli.add_argument("--num-heads", type=int, default=4)
    cli.add_argument("--intermediate-size", type=int, default=512)
    cli.add_argument("--vocab-size", type=int, default=1000)
    args = cli.parse_args(argv)
    if args.blocks * args.block_length > args.gen_length:
        raise SystemExit(f"--blocks {args.blocks} x --block-length exceeds --gen-length")
    rows = measure(args)
    text = table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cache_memory.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
