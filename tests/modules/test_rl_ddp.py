"""DiffusionRLModule under real 2-process DDP on the CPU (gloo): one all-reduce per step.

BGPO calls ``manual_backward`` once per (MC sample, micro-batch); ``_sync_context`` wraps all
but the last in ``DistributedDataParallel.no_sync()``, so each optimizer step all-reduces every
DDP bucket exactly once, as a step with a single backward does. A DDP communication hook counts
the buckets it is handed and records each bucket before and after the (ordinary) all-reduce.

Lightning's ``DDPStrategy(ddp_comm_hook=...)`` only registers the hook on CUDA, so a callback
registers it on the wrapped model in ``on_fit_start`` (before the first backward) instead.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from lightning.pytorch.strategies import DDPStrategy
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.optim import OptimConfig
from tests.modules.conftest import rl_kwargs

WORLD = 2
# fp64 gradients of the tiny model are ~67 kB; 20 kB buckets give several buckets per step.
BUCKET_CAP_MB = 0.02
MC_SAMPLES = 3
MICRO_BATCH = 3  # 2 prompts x G=4 = 8 responses per rank -> 3 micro-batches
BACKWARDS_PER_STEP = MC_SAMPLES * 3
MAX_STEPS = 2


class DenseRewardRL(DiffusionRLModule):
    """A dense, deterministic reward of the text, so that every group on every rank has
    non-zero advantages (the untrained model almost never scores on Sudoku, and a rank whose
    groups all tie has an all-zero local gradient, which would make the checks vacuous)."""

    def _scores(self, texts, examples):
        rewards = torch.tensor([sum(map(ord, text)) % 97 / 97 for text in texts])
        return rewards, torch.zeros_like(rewards)


class AlwaysSyncRL(DenseRewardRL):
    """Control: all-reduce on every backward (what happens without ``no_sync``)."""

    def _sync_context(self, is_last: bool):
        return nullcontext()


def flat_params(pl_module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in pl_module.policy.parameters()])


class CommCounter(L.Callback):
    """Counts DDP all-reduce buckets per optimizer step; each rank saves what it saw."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.steps: list[dict] = []
        self._buckets: list[dict] = []
        self.initial = None

    def hook(self, state, bucket):
        record = {
            "index": bucket.index(),
            "params": len(bucket.parameters()),
            "local": bucket.buffer().detach().clone(),
        }
        self._buckets.append(record)

        def keep_reduced(fut):
            reduced = fut.value()  # allreduce_hook's future holds the reduced bucket tensor
            record["reduced"] = reduced.detach().clone()
            return reduced

        return default_hooks.allreduce_hook(None, bucket).then(keep_reduced)

    def on_fit_start(self, trainer, pl_module):
        assert isinstance(trainer.model, DistributedDataParallel)
        assert dist.get_backend() == "gloo" and dist.get_world_size() == WORLD
        trainer.model.register_comm_hook(None, self.hook)
        self.initial = flat_params(pl_module)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grad = torch.cat([p.grad.flatten().clone() for p in pl_module.policy.parameters()])
        self.steps.append({"buckets": self._buckets, "grad": grad})
        self._buckets = []

    def on_fit_end(self, trainer, pl_module):
        state = {
            "steps": self.steps,
            "initial": self.initial,
            "params": flat_params(pl_module),
            "num_params": len(list(pl_module.policy.parameters())),
            "unreduced_tail": self._buckets,  # buckets reduced after the last step (should be none)
        }
        torch.save(state, os.path.join(self.out_dir, f"rank{trainer.global_rank}.pt"))


def ddp_fit(out_dir: Path, data, module_cls, **overrides) -> None:
    """One 2-rank fit in this (already launched) rank; the callback saves what it saw."""
    out_dir.mkdir(exist_ok=True)
    torch.manual_seed(0)  # the tiny model's initial weights (rank 0's are broadcast anyway)
    model = module_cls(**rl_kwargs(optim=OptimConfig(lr=1e-2), **overrides))
    trainer = L.Trainer(
        default_root_dir=out_dir,
        accelerator="cpu",
        devices=WORLD,
        strategy=DDPStrategy(
            process_group_backend="gloo",
            bucket_cap_mb=BUCKET_CAP_MB,
            timeout=timedelta(seconds=120),  # a stuck collective fails instead of hanging
        ),
        max_steps=MAX_STEPS,
        precision="64-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[CommCounter(str(out_dir))],
    )
    trainer.fit(model, data)


RUNS = {
    # n_t=3 samples x 3 micro-batches: 9 backwards per step, 8 of them under no_sync.
    "bgpo": (DenseRewardRL, dict(num_mc_samples=MC_SAMPLES, micro_batch_size=MICRO_BATCH)),
    # One backward per step: the all-reduce rounds a step should cost.
    "single": (DenseRewardRL, dict(num_mc_samples=1, micro_batch_size=64)),
    # Control: same as "bgpo" but syncing on every backward.
    "always": (AlwaysSyncRL, dict(num_mc_samples=MC_SAMPLES, micro_batch_size=MICRO_BATCH)),
}


def _rank_main(local_rank: int, port: int, out_dir: str, data) -> None:
    """One of the two processes, launched the way torchrun does: Lightning sees LOCAL_RANK and
    joins the group instead of starting processes itself. All runs share one process group, so
    the process start-up (importing torch and Lightning) is paid once, not per run."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(WORLD),
        NODE_RANK="0",
        LOCAL_RANK=str(local_rank),
        RANK=str(local_rank),
    )
    try:
        for name, (module_cls, overrides) in RUNS.items():
            ddp_fit(Path(out_dir) / name, data, module_cls, **overrides)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_ddp(out_dir: Path, data) -> dict[str, list[dict]]:
    # The ranks unpickle this module's objects by name, so they need the repository root on
    # sys.path (spawned children copy the parent's sys.path; the caller makes sure it is there).
    # join=True waits for both ranks; if one fails the other is terminated (no stray processes).
    mp.spawn(_rank_main, args=(find_free_network_port(), str(out_dir), data), nprocs=WORLD)
    return {
        name: [torch.load(out_dir / name / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
        for name in RUNS
    }


def per_step_counts(ranks: list[dict]) -> list[int]:
    counts = [[len(s["buckets"]) for s in rank["steps"]] for rank in ranks]
    assert all(c == counts[0] for c in counts), counts  # every rank joins the same rounds
    return counts[0]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_bgpo_all_reduces_once_per_step_under_ddp(tmp_path, sudoku_data, monkeypatch):
    # Under ``--import-mode=importlib`` the root is not on sys.path when run as plain `pytest`.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    runs = run_ddp(tmp_path, sudoku_data)
    bgpo, single, always = runs["bgpo"], runs["single"], runs["always"]

    bgpo_counts, single_counts = per_step_counts(bgpo), per_step_counts(single)
    assert len(bgpo_counts) == MAX_STEPS
    # Exactly the rounds of a one-backward step. (DDP starts with all parameters in one bucket
    # and re-buckets by bucket_cap_mb after the first iteration, so step 2 has several.)
    assert bgpo_counts == single_counts, (bgpo_counts, single_counts)
    assert bgpo_counts[-1] > 1, bgpo_counts
    for rank in bgpo:
        assert not rank["unreduced_tail"]
        for step in rank["steps"]:
            assert sorted(b["index"] for b in step["buckets"]) == list(range(len(step["buckets"])))
            assert sum(b["params"] for b in step["buckets"]) == rank["num_params"]
    # The counter does see the extra rounds when no_sync is not used: one per bucket per
    # backward (step 1 re-buckets after its first backward, hence only the last step is exact).
    always_counts = per_step_counts(always)
    assert all(a >= BACKWARDS_PER_STEP for a in always_counts), always_counts
    assert always_counts[-1] == BACKWARDS_PER_STEP * bgpo_counts[-1], always_counts

    for step in range(MAX_STEPS):
        for b in range(bgpo_counts[step]):
            buckets = [
                next(x for x in rank["steps"][step]["buckets"] if x["index"] == b) for rank in bgpo
            ]
            local = [x["local"] for x in buckets]
            reduced = [x["reduced"] for x in buckets]
            # The ranks' accumulated local gradients differ (own rollouts); the all-reduce
            # hands both the same mean.
            assert not torch.allclose(local[0], local[1])
            torch.testing.assert_close(
                reduced[0], (local[0] + local[1]) / WORLD, rtol=0, atol=1e-14
            )
            assert torch.equal(reduced[0], reduced[1])
        # The gradient the optimizer sees is the synced one, the same on both ranks and the
        # same as syncing on every backward.
        assert torch.equal(bgpo[0]["steps"][step]["grad"], bgpo[1]["steps"][step]["grad"])
        for rank in range(WORLD):
            torch.testing.assert_close(
                bgpo[rank]["steps"][step]["grad"],
                always[rank]["steps"][step]["grad"],
                rtol=1e-10,
                atol=1e-13,
            )
    # After the steps both ranks hold identical parameters, which moved.
    assert torch.equal(bgpo[0]["initial"], bgpo[1]["initial"])
    assert torch.equal(bgpo[0]["params"], bgpo[1]["params"])
    assert not torch.allclose(bgpo[0]["params"], bgpo[0]["initial"])
    torch.testing.assert_close(bgpo[0]["params"], always[0]["params"], rtol=1e-9, atol=1e-12)
