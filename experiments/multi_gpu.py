"""BGPO steps on one GPU, under DDP and under FSDP2: parity of the parameters, per-GPU memory,
and the time of a step (issue 14).

    python -m experiments.multi_gpu run --strategy single --devices 1 --out runs/multi_gpu/single
    python -m experiments.multi_gpu run --strategy ddp --devices 2 --out runs/multi_gpu/ddp
    python -m experiments.multi_gpu run --strategy fsdp2 --devices 2 --out runs/multi_gpu/fsdp2
    python -m experiments.multi_gpu compare runs/multi_gpu/single runs/multi_gpu/ddp ...

Every run trains the same global batch: ``--prompts-per-gpu x 2`` prompts of G responses per step
(``--global-gpus``, 2 by default), split over the run's GPUs. A prompt's tokens, responses,
rewards and mask samples are drawn from streams seeded by its global index and the step, so
they are the same whichever GPU processes it, and BGPO's per-GPU mean over responses, averaged
over the GPUs by DDP's all-reduce or FSDP2's reduce-scatter, is the one GPU's mean over the
global batch. Only the likelihood phase runs (the rollout is replaced by these random tokens, as
in ``experiments.gpu_benchmark``). Weights are float32 masters under ``bf16-mixed``, so the
updates are visible at the learning rate used; the parameters after the last step are saved
(gathered on rank 0 under FSDP2), and ``compare`` reports how far each run is from the first.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy
from torch.utils.data import DataLoader

from bgpo_lightning.diffusion.masking import MaskSamples
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.modules.rollout import Rollout
from bgpo_lightning.modules.sharding import full_state_dict
from bgpo_lightning.policy import DiffusionLM
from bgpo_lightning.policy.checkpointing import enable_gradient_checkpointing
from experiments.gpu_benchmark.__main__ import build_policy as build_random_policy
from experiments.gpu_benchmark.likelihood import RandomRolloutRL
from experiments.gpu_benchmark.shapes import SHAPES


def stream(kind: str, step: int, prompt: int, device: torch.device) -> torch.Generator:
    """A random stream of one prompt at one step, the same on every GPU."""
    seed = {"rollout": 1, "mask": 2}[kind] * 1_000_003 + 7919 * step + prompt
    return torch.Generator(device=device).manual_seed(seed)


class GlobalBatchRL(RandomRolloutRL):
    """BGPO on random rollouts whose content depends only on the global prompt index."""

    def __init__(self, policy, prompts_per_gpu: int, prompt_length: int, length: int, **kw):
        super().__init__(policy, prompts_per_gpu, prompt_length, length, **kw)
        self._prompts: list[int] = []

    def _global_prompts(self) -> list[int]:
        per_step = self.num_prompts * self.trainer.world_size
        first = self.global_step * per_step + self.global_rank * self.num_prompts
        return list(range(first, first + self.num_prompts))

    def rollout_batch(self, batch) -> Rollout:
        self._prompts = self._global_prompts()
        vocab = min(self.policy.model.config.vocab_size, self.policy.mask_token_id)
        g, device, parts = self.group_size, self.device, []
        for p in self._prompts:
            gen = stream("rollout", self.global_step, p, device)
            prompt = torch.randint(0, vocab, (1, self.prompt_length), generator=gen, device=device)
            responses = torch.randint(
                0, vocab, (g, self.response_length), generator=gen, device=device
            )
            rewards = torch.rand(g, generator=gen, device=device)
            parts.append((prompt.expand(g, -1), responses, rewards))
        return self.random_rollout(*(torch.cat(x) for x in zip(*parts, strict=True)))

    def draw_rollout_masks(self, n: int, length: int, prompt_length: int = 0) -> MaskSamples:
        count = self.objective.num_samples(self.num_mc_samples, self.num_inner_updates)
        parts = [
            self.estimator.draw(
                self.group_size,
                length,
                count,
                stream("mask", self.global_step, p, self.device),
                self.device,
                prompt_length=prompt_length,
            )
            for p in self._prompts
        ]
        return MaskSamples(
            torch.cat([m.mask for m in parts], dim=1),
            torch.cat([m.weight for m in parts], dim=1),
            parts[0].coef,
        )

    def _log_step(self, roll, loss, rollout_time, likelihood_time) -> None:
        super()._log_step(roll, loss, rollout_time, likelihood_time)
        self.records[-1].update(step=self.global_step, loss=float(loss))


def build_policy(args, device: torch.device) -> DiffusionLM:
    """The same random float32 weights on every GPU (one seed, built on the device)."""
    shape = SHAPES[args.shape]
    length = args.prompt_length + args.response_length
    policy = build_random_policy(shape, length, args.seed, device, torch.float32)
    if args.gradient_checkpointing:
        enable_gradient_checkpointing(policy.model)
    return policy


def strategy(args):
    if args.strategy == "single":
        return "auto"
    if args.strategy == "ddp":
        return DDPStrategy(process_group_backend=args.backend)
    return ModelParallelStrategy(
        data_parallel_size=args.devices * args.num_nodes,
        tensor_parallel_size=1,
        process_group_backend=args.backend,
    )


def run(args) -> None:
    accelerator = "gpu" if torch.cuda.is_available() and args.backend != "gloo" else "cpu"
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local_rank}" if accelerator == "gpu" else "cpu")
    gpus = args.devices * args.num_nodes
    if (args.global_gpus * args.prompts_per_gpu) % gpus:
        raise SystemExit(
            f"{args.global_gpus * args.prompts_per_gpu} prompts do not split over {gpus}"
        )
    policy = build_policy(args, device)
    module = GlobalBatchRL(
        policy,
        args.global_gpus * args.prompts_per_gpu // gpus,
        args.prompt_length,
        args.response_length,
        objective="bgpo",
        num_mc_samples=args.n_t,
        group_size=args.group_size,
        micro_batch_size=args.micro_batch_size,
        optim=OptimConfig(lr=args.lr, weight_decay=0.01, grad_clip=1.0),
        log_completions_every_n_steps=0,
    )
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=strategy(args),
        precision=args.precision,
        max_steps=args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )
    start = time.perf_counter()
    trainer.fit(module, DataLoader(list(range(args.steps)), batch_size=1))
    wall = time.perf_counter() - start
    state = full_state_dict(module.policy.model)  # every rank: a collective under FSDP2
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "strategy": args.strategy,
        "gradient_checkpointing": args.gradient_checkpointing,
        "gpus": gpus,
        "rank": trainer.global_rank,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "rows_per_gpu": module.num_prompts * args.group_size,
        "records": module.records,
        "wall_s": wall,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    (args.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(summary, indent=1))
    if trainer.is_global_zero and state is not None:
        torch.save(
            {k: v.float() for k, v in state.items()}, args.params_dir / f"{args.out.name}.pt"
        )


def summarize(directory: Path, warmup: int) -> dict:
    """Mean likelihood seconds after ``warmup`` steps (slowest GPU) and the largest peak."""
    ranks = [json.loads(p.read_text()) for p in sorted(directory.glob("rank*.json"))]
    measured = [[r for r in rank["records"] if r["step"] >= warmup] for rank in ranks]
    per_step = [
        max(values)
        for values in zip(*[[r["likelihood_s"] for r in m] for m in measured], strict=True)
    ]
    return {
        "run": directory.name,
        "strategy": ranks[0]["strategy"],
        "gc": ranks[0]["gradient_checkpointing"],
        "gpus": ranks[0]["gpus"],
        "device": ranks[0]["device"],
        "rows_per_gpu": ranks[0]["rows_per_gpu"],
        "step_s": sum(per_step) / len(per_step),
        "peak_gib_per_gpu": max(r["peak_bytes"] for m in measured for r in m) / 2**30,
    }


def compare(args) -> None:
    """A table of every run against the first: time, memory, scaling and parameter distance."""
    rows = [summarize(d, args.warmup_steps) for d in args.runs]
    base = rows[0]
    params = {r["run"]: args.params_dir / f"{r['run']}.pt" for r in rows}
    reference = torch.load(params[base["run"]]) if params[base["run"]].is_file() else None
    initial = torch.load(args.initial) if args.initial else None
    lines = [
        "| run | strategy | grad. ckpt | GPUs | rows / GPU | step s | speed-up | scaling "
        "efficiency | peak GiB / GPU | max abs Δθ vs first | max abs update of first | "
        "‖Δθ‖ / ‖update‖ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speedup = base["step_s"] / r["step_s"]
        r["speedup"] = speedup
        r["efficiency"] = speedup / (r["gpus"] / base["gpus"])
        r["max_abs_diff"] = r["max_abs_update"] = r["relative_diff"] = float("nan")
        other = torch.load(params[r["run"]]) if params[r["run"]].is_file() else None
        if reference is not None and other is not None:
            r["max_abs_diff"] = max((other[k] - reference[k]).abs().max().item() for k in reference)
        if reference is not None and initial is not None:
            r["max_abs_update"] = max(
                (reference[k] - initial[k]).abs().max().item() for k in reference
            )
        if reference is not None and other is not None and initial is not None:
            # Under bf16 autocast Adam's normalised steps amplify rounding on parameters whose
            # gradient is near zero, so a max-abs gap says little; the norm of the gap over
            # the norm of the first run's whole update is the parity measure.
            r["relative_diff"] = _norm(other, reference) / _norm(reference, initial)
        lines.append(
            f"| {r['run']} | {r['strategy']} | {'yes' if r['gc'] else 'no'} | {r['gpus']} | "
            f"{r['rows_per_gpu']} | {r['step_s']:.2f} | {speedup:.2f} | {r['efficiency']:.2f} | "
            f"{r['peak_gib_per_gpu']:.1f} | {r['max_abs_diff']:.2e} | {r['max_abs_update']:.2e} | "
            f"{r['relative_diff']:.2e} |"
        )
    table = "\n".join(lines) + "\n"
    args.table.write_text(table)
    (args.table.with_suffix(".json")).write_text(json.dumps(rows, indent=1))
    print(table)


def _norm(a: dict, b: dict) -> float:
    """The L2 norm of ``a - b`` over every parameter."""
    return sum(((a[k] - b[k]).double() ** 2).sum().item() for k in b) ** 0.5


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--strategy", choices=["single", "ddp", "fsdp2"], required=True)
    r.add_argument("--devices", type=int, default=1)
    r.add_argument("--num-nodes", type=int, default=1)
    r.add_argument("--global-gpus", type=int, default=2, help="GPUs the global batch is sized for")
    r.add_argument("--prompts-per-gpu", type=int, default=2)
    r.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    r.add_argument("--group-size", type=int, default=8)
    r.add_argument("--n-t", type=int, default=8)
    r.add_argument("--micro-batch-size", type=int, default=4)
    r.add_argument("--prompt-length", type=int, default=256)
    r.add_argument("--response-length", type=int, default=512)
    r.add_argument("--steps", type=int, default=3)
    r.add_argument("--lr", type=float, default=1e-5)
    r.add_argument("--precision", default="bf16-mixed")
    r.add_argument("--gradient-checkpointing", action="store_true")
    r.add_argument("--backend", default=None, help="process group backend (gloo for CPU)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--params-dir", type=Path, default=Path("/tmp"))
    c = sub.add_parser("compare")
    c.add_argument("runs", nargs="+", type=Path)
    c.add_argument("--params-dir", type=Path, default=Path("/tmp"))
    c.add_argument("--initial", type=Path, default=None, help="parameters before training")
    c.add_argument("--warmup-steps", type=int, default=1)
    c.add_argument("--table", type=Path, required=True)
    i = sub.add_parser("initial", help="save the runs' initial parameters")
    i.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    i.add_argument("--prompt-length", type=int, default=256)
    i.add_argument("--response-length", type=int, default=512)
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--gradient-checkpointing", action="store_true")
    i.add_argument("--to", type=Path, required=True)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.command == "run":
        run(args)
    elif args.command == "compare":
        compare(args)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        policy = build_policy(args, device)
        torch.save({k: v.float().cpu() for k, v in policy.model.state_dict().items()}, args.to)


if __name__ == "__main__":
    main()
