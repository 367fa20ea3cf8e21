"""DiffusionRLModule under real 2-process DDP on the CPU (gloo): one all-reduce per step.

BGPO calls ``manual_backward`` once per (MC sample, micro-batch); ``_sync_context`` wraps all
but the last in ``DistributedDataParallel.no_sync()``, so each optimizer step all-reduces every
DDP bucket exactly once, as a step with a single backward does. A DDP communication hook counts
the buckets it is handed and records each bucket before and after the (ordinary) all-reduce.

Lightning's ``DDPStrategy(ddp_comm_hook=...)`` only registers the hook on CUDA, so a callback
registers it on the wrapped model in ``on_fit_start`` (before the first backward) instead.

In the same two processes: a resume from the checkpoint file that rank 0 alone writes hands
each rank its own random streams back; and a non-finite loss on rank 1 alone makes both ranks
skip the update (a rank deciding alone would diverge, or hang at the next collective).
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from bgpo_lightning.callbacks import HFExport
from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.policy import PolicySpec, build_policy
from tests.helpers import compact_sudoku_data, join_as_rank
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


class NaNOnRank1RL(DenseRewardRL):
    """Rank 1's first rollout batch gets NaN advantages: its loss is NaN (and, through the
    all-reduce, both ranks' gradients), while rank 0's own loss stays finite."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.batches = 0

    def rollout_batch(self, batch):
        roll = super().rollout_batch(batch)
        self.batches += 1
        if self.batches == 1 and self.global_rank == 1:
            nan = torch.full_like(roll.advantages, float("nan"))
            roll = dataclasses.replace(roll, advantages=nan)
        return roll


class BatchRecorder(L.Callback):
    """Per training batch: its loss, the optimizer steps so far and the parameters after it."""

    def __init__(self):
        self.initial = None
        self.batches: list[dict] = []

    def on_train_start(self, trainer, pl_module):
        self.initial = flat_params(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches.append(
            {
                "loss": outputs["loss"].detach().clone(),
                "global_step": trainer.global_step,
                "params": flat_params(pl_module),
            }
        )


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


def ddp_fit(
    out_dir: Path, data, module_cls, callbacks=None, steps=MAX_STEPS, ckpt_path=None, **overrides
):
    """One 2-rank fit in this (already launched) rank; returns the module. By default a
    ``CommCounter`` saves what it saw."""
    out_dir.mkdir(exist_ok=True)
    torch.manual_seed(0)  # the tiny model's initial weights (rank 0's are broadcast anyway)
    model = module_cls(**rl_kwargs(optim=OptimConfig(lr=1e-2), **overrides))
    callbacks = [CommCounter(str(out_dir))] if callbacks is None else list(callbacks)
    trainer = L.Trainer(
        default_root_dir=out_dir,
        accelerator="cpu",
        devices=WORLD,
        strategy=DDPStrategy(
            process_group_backend="gloo",
            bucket_cap_mb=BUCKET_CAP_MB,
            timeout=timedelta(seconds=120),  # a stuck collective fails instead of hanging
        ),
        max_steps=steps,
        precision="64-true",
        logger=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=callbacks,
    )
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return model


RUNS = {
    # n_t=3 samples x 3 micro-batches: 9 backwards per step, 8 of them under no_sync.
    "bgpo": (DenseRewardRL, dict(num_mc_samples=MC_SAMPLES, micro_batch_size=MICRO_BATCH)),
    # One backward per step: the all-reduce rounds a step should cost.
    "single": (DenseRewardRL, dict(num_mc_samples=1, micro_batch_size=64)),
    # Control: same as "bgpo" but syncing on every backward (gradient_sync="every").
    "always": (
        DenseRewardRL,
        dict(num_mc_samples=MC_SAMPLES, micro_batch_size=MICRO_BATCH, gradient_sync="every"),
    ),
}


def streams(model) -> dict[str, torch.Tensor]:
    return {name: model.generator(name).get_state() for name in ("rollout", "mask")}


def resume_and_nonfinite(out: Path, data, rank: int) -> None:
    """The checkpoint and non-finite runs; this rank saves what it saw to ``out``."""
    out.mkdir(exist_ok=True)
    results = {}
    # One step with a checkpoint (rank 0 writes the file), then a resume from it that takes
    # no further step: each rank's streams right after loading, against those it saved.
    # The HF export runs on both ranks, each told its own directory: only rank 0's is written.
    checkpoint = ModelCheckpoint(dirpath=out / "ckpt", save_last=True)
    export = HFExport(dirpath=str(out / f"export{rank}"))
    saving = ddp_fit(out / "saving", data, DenseRewardRL, [checkpoint, export], steps=1)
    results["saved_streams"] = streams(saving)
    results["exported_to"] = export.saved_to
    results["weights"] = {k: v.clone() for k, v in saving.policy.model.state_dict().items()}
    last = out / "ckpt" / "last.ckpt"
    resumed = ddp_fit(out / "resumed", data, DenseRewardRL, [], steps=1, ckpt_path=last)
    results["resumed_streams"] = streams(resumed)
    saved_file = torch.load(last, weights_only=False)
    results["file_streams_by_rank"] = saved_file.get("generator_states_by_rank")
    # Rank 1's loss is NaN in the first batch, rank 0's is not: three batches for two steps.
    recorder = BatchRecorder()
    model = ddp_fit(out / "nonfinite", data, NaNOnRank1RL, [recorder], steps=MAX_STEPS)
    results["nonfinite"] = {
        "initial": recorder.initial,
        "batches": recorder.batches,
        "streak": model._nonfinite_streak,
    }
    torch.save(results, out / f"rank{rank}.pt")


def _rank_main(local_rank: int, port: int, out_dir: str, data) -> None:
    """One of the two processes, launched the way torchrun does: Lightning sees LOCAL_RANK and
    joins the group instead of starting processes itself. All runs share one process group, so
    the process start-up (importing torch and Lightning) is paid once, not per run."""
    join_as_rank(local_rank, WORLD, port)
    try:
        for name, (module_cls, overrides) in RUNS.items():
            ddp_fit(Path(out_dir) / name, data, module_cls, **overrides)
        resume_and_nonfinite(Path(out_dir) / "extra", data, local_rank)
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
        for name in (*RUNS, "extra")
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every 2-rank run of this file, in one pair of processes (started once)."""
    data = compact_sudoku_data()  # as conftest's sudoku_data, which is function-scoped
    out = tmp_path_factory.mktemp("ddp")
    with pytest.MonkeyPatch.context() as patch:
        # Under ``--import-mode=importlib`` the root is not on sys.path when run as plain
        # `pytest`.
        patch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
        return {**run_ddp(out, data), "out": out}


needs_gloo = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"
)


def per_step_counts(ranks: list[dict]) -> list[int]:
    counts = [[len(s["buckets"]) for s in rank["steps"]] for rank in ranks]
    assert all(c == counts[0] for c in counts), counts  # every rank joins the same rounds
    return counts[0]


@needs_gloo
def test_bgpo_all_reduces_once_per_step_under_ddp(runs):
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


@needs_gloo
def test_each_rank_resumes_its_own_streams_from_rank_zeros_checkpoint_file(runs):
    ranks = runs["extra"]
    saved = [r["saved_streams"] for r in ranks]
    assert not torch.equal(saved[0]["rollout"], saved[1]["rollout"])  # seeded by the rank
    # The one file holds both ranks' states, indexed by global rank ...
    in_file = ranks[0]["file_streams_by_rank"]
    assert len(in_file) == WORLD
    for rank in range(WORLD):
        for name, state in saved[rank].items():
            assert torch.equal(in_file[rank][name], state), (rank, name)
            # ... and each resumed rank took its own back, not rank 0's.
            assert torch.equal(ranks[rank]["resumed_streams"][name], state), (rank, name)


@needs_gloo
def test_a_nonfinite_loss_on_one_rank_skips_the_update_on_every_rank(runs):
    first, second = (r["nonfinite"] for r in runs["extra"])
    assert torch.equal(first["initial"], second["initial"])
    # Batch 1: only rank 1's loss is NaN, yet neither rank stepped.
    assert torch.isfinite(first["batches"][0]["loss"])
    assert torch.isnan(second["batches"][0]["loss"])
    for rank in (first, second):
        assert [b["global_step"] for b in rank["batches"]] == [0, 1, 2]
        assert torch.equal(rank["batches"][0]["params"], rank["initial"])
        assert rank["streak"] == 0  # reset by the steps that followed
    # Training went on, in step: identical, finite parameters that moved.
    for a, b in zip(first["batches"], second["batches"], strict=True):
        assert torch.equal(a["params"], b["params"])
    final = first["batches"][-1]["params"]
    assert torch.isfinite(final).all() and not torch.equal(final, first["initial"])


@needs_gloo
def test_hf_export_under_ddp_is_written_by_rank_zero_alone(runs):
    first, second = runs["extra"]
    out = runs["out"] / "extra"
    assert first["exported_to"] == out / "export0" and second["exported_to"] is None
    assert not (out / "export1").exists()  # rank 1 ran the callback but wrote nothing
    loaded, _ = build_policy(PolicySpec(path=str(out / "export0")))
    exported = loaded.model.state_dict()
    assert set(exported) == set(first["weights"])
    for name, value in first["weights"].items():
        assert torch.equal(exported[name], value), name
        assert torch.equal(second["weights"][name], value), name  # DDP: the same weights
