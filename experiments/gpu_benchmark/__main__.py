"""GPU benchmark: memory and time of every objective against n_t, and rollout throughput.

    python -m experiments.gpu_benchmark --shape 1b --out runs/gpu_benchmark
    python -m experiments.gpu_benchmark --plot-only runs/gpu_benchmark   # PNG from the CSV

Writes ``likelihood.csv``, ``rollout.json``, ``system.json``, ``table.md`` and
``benchmark.png`` (when matplotlib is installed) under ``--out`` and prints the table.

Rollout modes (issue 11): ``--rollout-modes`` times one rollout per sampler mode on the same
random model and prompts (``rows / --group-size`` prompts, each repeated G times), after the
likelihood cases, and writes ``rollout_modes.csv`` and ``rollout_modes.md`` (also printed):

    python -m experiments.gpu_benchmark --shape 1b --objectives bgpo --n-t 16 --old-pass-n-t \
        --rollout-steps 0 --compare-steps 0 --rollout-mode-steps 256 --rollout-rows 16 64 \
        --rollout-modes exact prefix dual threshold0.9 threshold0.95 prefix+threshold0.9 \
        dual+threshold0.9 \
        --compile-modes dual dual+threshold0.9 --out runs/gpu_benchmark/modes_1b

--rollout-modes NAME ...   modes to time (default: none), named as
                           :mod:`experiments.sampler_modes` defines: ``+``-joined parts of
                           ``exact``, ``prefix`` / ``dual``, ``threshold<tau>``,
                           ``refresh<k>``, ``graph`` and ``f32``; e.g. ``dual+threshold0.9``,
                           ``prefix+refresh1`` (the exact sampler's tokens).
--compile-modes NAME ...   also time these modes with ``torch.compile`` of the model forward
                           (each is timed with and without); a failed compile is recorded in
                           the row's status.
--compiled-only-modes NAME ...
                           time these modes only with ``torch.compile``, after the others
                           (their eager rows come from another run).
--compile                  time every mode with and without ``torch.compile``.
--rollout-rows N ...       batch sizes to time (default: --num-prompts x --group-size).
--rollout-mode-steps STEPS diffusion steps of the modes (default: --rollout-steps, which
                           0 sets to skip the vectorised-vs-reference rollout timing).
--modes-warmup-steps-per-block K
                           the warm-up rollout runs K steps per block (every shape the timed
                           rollout runs; default 2, and at least 2 for a cache, whose first
                           step in a block reads the refresh); 0 warms up with the full timed
                           rollout.
--likelihood-s S           seconds of BGPO's likelihood phase at n_t = 16 for --num-prompts x
                           --group-size rows, for the rollout's share of a step when this run
                           measures no ``bgpo`` n_t = 16 case (``--n-t`` with no value measures
                           no likelihood case at all).

Each row has the mode, rows, generation length, block, steps, seconds, generated tokens/s,
speed-up over the eager exact sampler at the same rows, model forwards (full-sequence ones
apart), peak memory, the fraction of prompt groups with two identical responses (only
meaningful on a trained model: a random one's logits are near uniform), the fraction of
response tokens that differ from the exact sampler's, and the rollout's share of a BGPO step.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.policy import DiffusionLM, build_tiny_model
from bgpo_lightning.policy.merged_lora import merged_adapter
from experiments.gpu_benchmark.likelihood import (
    VARIANTS,
    LikelihoodCase,
    apply_variant,
    measure_likelihood,
)
from experiments.gpu_benchmark.modes import group_prompts, measure_modes, profile_modes
from experiments.gpu_benchmark.report import (
    markdown_table,
    mode_table,
    plot,
    read_csv,
    write_csv,
    write_mode_files,
)
from experiments.gpu_benchmark.rollout import measure_rollout, profile_rollout
from experiments.gpu_benchmark.shapes import SHAPES
from experiments.sampler_modes import mode_argument


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    p.add_argument("--objectives", nargs="+", default=["bgpo", "vrpo_ol"])
    p.add_argument(
        "--one-draw-objectives",
        nargs="*",
        default=[],
        help="objectives measured at n_t = 1 only: they draw one mask per inner update "
        "(diffu_grpo, wd1)",
    )
    p.add_argument(
        "--n-t",
        nargs="*",
        type=int,
        default=[1, 2, 4, 8, 16, 32, 64],
        help="n_t of the likelihood cases; none (empty) skips them",
    )
    p.add_argument(
        "--old-pass-n-t",
        nargs="*",
        type=int,
        default=[4, 16],
        help="n_t at which BGPO also runs with a separate no-grad l_old pass",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=["plain"],
        help="policy variants of the --objectives cases: gc = gradient checkpointing, "
        "lora = d1's LoRA (r 128, alpha 64), lora+merged = lora with its rollout run with the "
        "adapter merged (merge_lora)",
    )
    p.add_argument(
        "--precision",
        default="bf16-true",
        help="Trainer precision of the likelihood cases (bf16-mixed needs float32 weights)",
    )
    p.add_argument(
        "--weights-dtype",
        choices=["bfloat16", "float32"],
        default="bfloat16",
        help="dtype of the random policy's weights",
    )
    p.add_argument("--num-prompts", type=int, default=2)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--micro-batch-size", type=int, default=4)
    p.add_argument("--prompt-length", type=int, default=256)
    p.add_argument("--response-length", type=int, default=512)
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--rollout-steps", type=int, default=256, help="the paper's math setting")
    p.add_argument(
        "--compare-steps",
        type=int,
        default=64,
        help="diffusion steps of the vectorised-vs-reference comparison",
    )
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--measured-steps", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/gpu_benchmark"))
    p.add_argument(
        "--memory-limit-gib",
        type=float,
        default=None,
        help="cap PyTorch's allocator (e.g. 79.6: an 80 GB H100 on an H200)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also write profile.txt: top GPU ops of a short rollout of each sampler",
    )
    p.add_argument(
        "--rollout-modes",
        nargs="*",
        type=mode_argument,
        default=[],
        metavar="NAME",
        help="sampler modes to time (see above), e.g. exact prefix dual dual+threshold0.9",
    )
    p.add_argument(
        "--compile-modes",
        nargs="*",
        type=mode_argument,
        default=[],
        metavar="NAME",
        help="modes also timed with torch.compile of the model forward",
    )
    p.add_argument(
        "--compiled-only-modes",
        nargs="*",
        type=mode_argument,
        default=[],
        metavar="NAME",
        help="modes timed only with torch.compile (their eager rows come from another run)",
    )
    p.add_argument(
        "--compile", action="store_true", help="time every mode with and without torch.compile"
    )
    p.add_argument(
        "--profile-modes",
        nargs="*",
        type=mode_argument,
        default=[],
        metavar="NAME",
        help="write profile_modes.txt: top GPU ops of a two-block rollout of each mode",
    )
    p.add_argument("--rollout-rows", nargs="+", type=int, default=None, metavar="N")
    p.add_argument("--rollout-mode-steps", type=int, default=None, metavar="STEPS")
    p.add_argument("--modes-warmup-steps-per-block", type=int, default=2, metavar="K")
    p.add_argument("--likelihood-s", type=float, default=None, metavar="S")
    p.add_argument("--device", default="cuda", help="cpu only for a smoke test (--shape tiny)")
    p.add_argument("--plot-only", type=Path, default=None, metavar="DIR")
    return p.parse_args(argv)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, size: int = 8192, repeats: int = 20) -> float:
    """Measured dense bf16 matmul rate, the MFU denominator."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def build_policy(
    shape, max_positions: int, seed: int, device: torch.device, dtype=torch.bfloat16
) -> DiffusionLM:
    """Random weights (bf16 by default), initialised on the device (an 8B model in seconds)."""
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            model = build_tiny_model(shape.vocab, shape.tiny_config(max_positions))
    finally:
        torch.set_default_dtype(default)
    return DiffusionLM(model, shape.mask_id).train()


def run(args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    shape = SHAPES[args.shape]
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    props = torch.cuda.get_device_properties(device) if cuda else None
    system = {
        "gpu": props.name if cuda else "cpu",
        "gpu_memory_gib": props.total_memory / 2**30 if cuda else None,
        "torch": torch.__version__,
        "shape": args.shape,
        "params": shape.params,
        "matmul_tflops": matmul_tflops(device, 8192 if cuda else 256),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.memory_limit_gib:
        fraction = args.memory_limit_gib * 2**30 / props.total_memory
        torch.cuda.set_per_process_memory_fraction(min(fraction, 1.0), device.index or 0)
        system["memory_limit_gib"] = args.memory_limit_gib
    print(json.dumps(system, indent=1), flush=True)
    length = args.prompt_length + args.response_length
    policy = build_policy(shape, length, args.seed, device, getattr(torch, args.weights_dtype))
    rows_per_step = args.num_prompts * args.group_size

    rollout = {}
    for name, steps, reference in (
        ("training", args.rollout_steps, False),
        ("comparison", args.compare_steps, True),
    ):
        if not steps:
            continue
        rollout[name] = timed_rollout(args, policy, rows_per_step, steps, reference)
        step_flops = shape.forward_flops(rows_per_step, length, args.block_length)
        rollout[name]["mfu_of_forwards"] = (
            step_flops * steps / rollout[name]["vectorised_s"] / 1e12 / system["matmul_tflops"]
        )
        print(name, json.dumps(rollout[name]), flush=True)
    (args.out / "rollout.json").write_text(json.dumps(rollout, indent=1))
    rollout_s = rollout["training"]["vectorised_s"] if "training" in rollout else math.nan
    if args.profile:
        config = SamplerConfig(64, args.block_length, 8, temperature=0.6)
        text = profile_rollout(
            policy,
            rows=rows_per_step,
            prompt_length=args.prompt_length,
            config=config,
            seed=args.seed,
        )
        (args.out / "profile.txt").write_text(text)
        print(text, flush=True)

    def variant_cases(lora: bool) -> list[LikelihoodCase]:
        variants = [v for v in args.variants if ("lora" in v) == lora]
        return [
            LikelihoodCase(o, n, variant=v)
            for v in variants
            for o in args.objectives
            for n in args.n_t
        ]

    cases = variant_cases(lora=False)
    cases += [LikelihoodCase(o, 1) for o in args.one_draw_objectives]
    cases += [LikelihoodCase("bgpo", n, separate_old_pass=True) for n in args.old_pass_n_t]
    cases += variant_cases(lora=True)  # last: once added to the shared policy, the adapter stays
    rows, out_of_memory = [], set()
    for case in cases:
        key = lora_rollout_key(case.variant)
        if key and "training" in rollout and key not in rollout:
            # The adapter's matmuls run in every sampler forward too: time the same rollout
            # again with it on (or merged), so that a LoRA row's step time includes its own.
            rollout[key] = lora_rollout(args, policy, case.variant, rows_per_step)
            print(key, json.dumps(rollout[key]), flush=True)
            (args.out / "rollout.json").write_text(json.dumps(rollout, indent=1))
        if case.label in out_of_memory:  # a larger n_t needs more memory still
            row = {
                "case": case.label,
                "objective": case.objective,
                "n_t": case.num_mc_samples,
                "variant": case.variant,
                "separate_old_pass": case.separate_old_pass,
                "status": "OOM (after smaller)",
                "likelihood_s": math.nan,
                "peak_gib": math.nan,
                "wall_s": 0.0,
            }
        else:
            row = measure_likelihood(
                policy,
                case,
                device=device,
                num_prompts=args.num_prompts,
                group_size=args.group_size,
                micro_batch_size=args.micro_batch_size,
                prompt_length=args.prompt_length,
                response_length=args.response_length,
                warmup_steps=args.warmup_steps,
                measured_steps=args.measured_steps,
                precision=args.precision,
            )
            if row["status"] != "ok":
                out_of_memory.add(case.label)
        flops = case.num_mc_samples * shape.train_flops(rows_per_step, length, args.response_length)
        if case.separate_old_pass:
            flops += case.num_mc_samples * shape.forward_flops(
                rows_per_step, length, args.response_length
            )
        row["likelihood_s_per_sample"] = row["likelihood_s"] / case.num_mc_samples
        row["mfu"] = flops / row["likelihood_s"] / 1e12 / system["matmul_tflops"]
        # Checkpointing changes nothing in the no-grad rollout; an adapter does.
        row["rollout_s"] = rollout.get(key, {}).get("vectorised_s", rollout_s)
        row["step_s"] = row["rollout_s"] + row["likelihood_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        write_csv(rows, args.out / "likelihood.csv")
    (args.out / "system.json").write_text(json.dumps(system, indent=1))
    if rows:
        report(args.out)
    if args.rollout_modes or args.compile_modes or args.compiled_only_modes:
        run_modes(args, policy, rows)
    if args.profile_modes:
        run_mode_profiles(args, policy)


def timed_rollout(args, policy: DiffusionLM, rows: int, steps: int, with_reference: bool):
    """One rollout of the run's shape at the paper's temperature (see measure_rollout)."""
    config = SamplerConfig(args.response_length, args.block_length, steps, temperature=0.6)
    return measure_rollout(
        policy,
        rows=rows,
        prompt_length=args.prompt_length,
        config=config,
        seed=args.seed,
        with_reference=with_reference,
    )


def lora_rollout_key(variant: str) -> str | None:
    """Where a variant's own rollout time is kept in ``rollout.json`` (None: the plain one)."""
    if "lora" not in variant:
        return None
    return "training_lora_merged" if "merged" in variant else "training_lora"


def lora_rollout(args, policy: DiffusionLM, variant: str, rows: int) -> dict:
    """The training rollout of the run, timed again with ``variant``'s adapter on (merged
    into stand-in weights for ``lora+merged``)."""
    policy.to(torch.device(args.device))  # Lightning's teardown leaves it on the CPU
    apply_variant(policy, variant)
    with merged_adapter(policy, enabled="merged" in variant):
        return timed_rollout(args, policy, rows, args.rollout_steps, with_reference=False)


def _timed_modes(args) -> list:
    """``(mode, compiled)`` pairs: every mode eager in the order given, then the compiled ones
    (their compile time last, so a run cut short still has every eager row printed)."""
    names = {m.name for m in args.compile_modes}
    modes = list(dict.fromkeys(args.rollout_modes + args.compile_modes))
    compiled = [(m, True) for m in modes if args.compile or m.name in names]
    only = [(m, True) for m in args.compiled_only_modes if (m, True) not in compiled]
    return [(m, False) for m in modes] + compiled + only


def _mode_base_config(args) -> SamplerConfig:
    """The rollout every mode changes: the paper's temperature, --rollout-mode-steps steps."""
    steps = args.rollout_mode_steps or args.rollout_steps
    return SamplerConfig(args.response_length, args.block_length, steps, temperature=0.6)


def run_modes(args, policy: DiffusionLM, likelihood_rows: list[dict]) -> None:
    """Times every rollout mode; writes ``rollout_modes.csv`` and ``rollout_modes.md``."""
    rows_per_step = args.num_prompts * args.group_size
    bgpo_16 = [
        r["likelihood_s"]
        for r in likelihood_rows
        if r["case"] == "bgpo" and r["n_t"] == 16 and r["status"] == "ok"
    ]
    likelihood_s = bgpo_16[0] if bgpo_16 else args.likelihood_s
    # Lightning's teardown after a likelihood case leaves the shared policy on the CPU.
    policy.to(torch.device(args.device))
    base = _mode_base_config(args)
    rows = measure_modes(
        policy,
        _timed_modes(args),
        rows_list=args.rollout_rows or [rows_per_step],
        prompt_length=args.prompt_length,
        base=base,
        group_size=args.group_size,
        seed=args.seed,
        warmup_steps_per_block=args.modes_warmup_steps_per_block,
        likelihood_s=math.nan if likelihood_s is None else likelihood_s,
        likelihood_rows=rows_per_step,
        on_row=lambda row: print(json.dumps(row), flush=True),
        on_finished=lambda rows: write_mode_files(rows, args.out, args.group_size),
    )
    print(mode_table(rows, args.group_size), flush=True)


def run_mode_profiles(args, policy: DiffusionLM) -> None:
    """Writes ``profile_modes.txt`` (see ``modes.profile_modes``) at the first row count."""
    policy.to(torch.device(args.device))
    rows = (args.rollout_rows or [args.num_prompts * args.group_size])[0]
    prompts = group_prompts(
        rows, args.group_size, args.prompt_length, policy.mask_token_id, torch.device(args.device)
    )
    base = _mode_base_config(args)
    text = profile_modes(policy, args.profile_modes, prompts=prompts, base=base, seed=args.seed)
    (args.out / "profile_modes.txt").write_text(text)
    print(text, flush=True)


def report(out: Path) -> None:
    rows = read_csv(out / "likelihood.csv")
    system = json.loads((out / "system.json").read_text())
    table = markdown_table(rows)
    (out / "table.md").write_text(table)
    print(table)
    title = (
        f"{system['shape']} LLaDA-shaped model ({system['params'] / 1e9:.2f}B params, bf16) on "
        f"{system['gpu']}"
    )
    limit = system.get("memory_limit_gib") or system["gpu_memory_gib"]
    if limit != system["gpu_memory_gib"]:
        title += f", allocator capped at {limit:g} GiB"
    if not plot(rows, out / "benchmark.png", title, limit):
        print("matplotlib not installed: no PNG (run --plot-only DIR where it is)")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.plot_only is not None:
        report(args.plot_only)
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU (use --device cpu --shape tiny for a smoke test)")
    run(args)


if __name__ == "__main__":
    main()
