"""DiffusionRLModule under FSDP2 (Lightning's ModelParallelStrategy) on 2 CPU processes (gloo).

**What is compared with what.** A 2-rank FSDP2 run against ONE process (no strategy) that sees
both ranks' prompts, step by step: the full gradient, the logged global gradient norm, and the
parameters after each of two optimizer steps (clipping active, AdamW). For the two to be equal
up to float64 rounding, three things must line up:

- *data*: the training prompts are served in order, so the single process's batch of 4 is the
  union of the ranks' batches of 2 (``DistributedSampler`` without shuffling hands rank r the
  prompts r, r+2, ...);
- *randomness*: the module's rollout and mask streams are seeded by the rank, so a rank and
  the single process would draw different rollouts for the same prompt. :class:`ReplayRL`
  draws each prompt's G rollouts and its masks from streams seeded by the prompt's text and the
  step instead, with the policy's own sampler: identical parameters give identical rollouts
  wherever the prompt is processed;
- *loss normalisation*: BGPO's loss is a mean over the responses of a rank (8 here), and FSDP2
  averages the ranks' gradients (reduce-scatter with mean), so the 2-rank gradient is the mean
  over all 16 responses, which is what the single process computes. (A token-mean objective
  would not line up this way; BGPO is the one under test.)

The reward is a dense function of the text (the DDP test's), so every group has non-zero
advantages. Float64 weights (``policy.double()``; ModelParallelStrategy refuses
``precision="64-true"``, and with ``32-true`` the weights keep their dtype).

The same parity with a KL term (the frozen reference copy sharded as well). Also shown: one
gradient reduce-scatter per FSDP2 unit per optimizer step although BGPO runs 9 backwards
(``torch.distributed``'s reduce-scatter is wrapped to count calls; a control that syncs on
every backward shows 9 times as many), also for SFT; rollouts with ``gather_weights`` give the
same steps with fewer all-gathers; the distributed checkpoint resumes to the
same parameters as an uninterrupted run, each rank with its own random streams (the module's
checkpoint hooks gather every rank's generator states: rank 0 alone writes the metadata);
``full_state_dict`` gathers the single process's weights on rank 0 (``save_pretrained``
writes them); and the ``HFExport`` callback, which runs on every rank, writes them at the end of
fit in a directory that ``PolicySpec(path=...)`` loads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from datetime import timedelta
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.fsdp import FSDPModule
from torch.utils.data import DataLoader, DistributedSampler
from transformers import LlamaForCausalLM

from bgpo_lightning.callbacks import HFExport
from bgpo_lightning.diffusion.masking import MaskSamples
from bgpo_lightning.modules import DiffusionSFTModule
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.modules.sharding import full_state_dict, full_tensor
from bgpo_lightning.policy import PolicySpec, build_policy
from bgpo_lightning.tasks import PromptDataModule
from bgpo_lightning.tasks.datamodule import collate_examples
from tests.helpers import TINY, CollectiveCounter, join_as_rank
from tests.modules.conftest import GREEDY, SAMPLER, rl_kwargs
from tests.modules.test_rl_ddp import DenseRewardRL

WORLD = 2
MC_SAMPLES = 3
MICRO_BATCH = 3  # 2 prompts x G=4 = 8 responses per rank -> 3 micro-batches
BACKWARDS_PER_STEP = MC_SAMPLES * 3
PROMPTS_PER_RANK = 2
MAX_STEPS = 2
GRAD_CLIP = 0.05  # below the gradient norms here: clipping is active and needs the global norm
OPTIM = OptimConfig(lr=1e-2, grad_clip=GRAD_CLIP)
OVERRIDES = dict(num_mc_samples=MC_SAMPLES, micro_batch_size=MICRO_BATCH, optim=OPTIM)
KL = dict(objective_settings={"kl_coef": 0.5})


def stream(*key) -> torch.Generator:
    """A generator seeded by ``key`` alone (not by the rank or the process)."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class KeepsLoggedNorms:
    """Keeps what the module logs as ``train/grad_norm``, as it is handed to ``log``."""

    def log(self, name, value, *args, **kwargs):
        if name == "train/grad_norm":
            self.__dict__.setdefault("logged_norms", []).append(value)
        super().log(name, value, *args, **kwargs)


class ReplayRL(KeepsLoggedNorms, DenseRewardRL):
    """Rollouts and masks drawn per prompt from streams seeded by (prompt, step): the same in a
    rank and in a single process that sees more prompts."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.prompts: list[str] = []

    def rollout_batch(self, batch):
        self.prompts = [e.prompt for e in batch]
        return super().rollout_batch(batch)

    def sample(self, prompt_ids, prompt_mask, config, generator=None):
        if generator is None:  # greedy evaluation
            return super().sample(prompt_ids, prompt_mask, config, generator)
        assert bool(prompt_mask.all())  # same-length prompts: no padding that could differ
        g = self.group_size
        return torch.cat(
            [
                super(ReplayRL, self).sample(
                    prompt_ids[i * g : (i + 1) * g],
                    prompt_mask[i * g : (i + 1) * g],
                    config,
                    stream("rollout", prompt, self.global_step),
                )
                for i, prompt in enumerate(self.prompts)
            ]
        )

    def draw_rollout_masks(self, n, length, prompt_length=0):
        assert n == self.group_size * len(self.prompts)
        count = self.objective.num_samples(self.num_mc_samples, self.num_inner_updates)
        parts = [
            self.estimator.draw(
                self.group_size,
                length,
                count,
                stream("mask", prompt, self.global_step),
                self.device,
                prompt_length=prompt_length,
            )
            for prompt in self.prompts
        ]
        assert all(p.prompt_mask is None for p in parts)
        return MaskSamples(
            torch.cat([p.mask for p in parts], dim=1),
            torch.cat([p.weight for p in parts], dim=1),
            parts[0].coef,
        )


class NormLoggingSFT(KeepsLoggedNorms, DiffusionSFTModule):
    """The SFT module (automatic optimisation, one backward per step)."""


class InOrderData(PromptDataModule):
    """Training prompts in dataset order, rank r taking the prompts r, r + 2, ... (Lightning's
    own distributed sampler always shuffles training data; the Trainer is told not to add it)."""

    def train_dataloader(self):
        examples = self.examples("train")
        sampler = DistributedSampler(examples, shuffle=False) if dist.is_initialized() else None
        return DataLoader(
            examples, batch_size=self.batch_size, sampler=sampler, collate_fn=collate_examples
        )


def data_module(batch_size: int, num_train: int) -> InOrderData:
    compact = {"prompt_template": "Sudoku {puzzle}=", "target_template": "{solution}"}
    return InOrderData(
        task="sudoku",
        task_kwargs={**compact, "reward_mode": "lenient"},
        num_train=num_train,
        num_val=8,
        num_test=8,
        batch_size=batch_size,
        val_batch_size=8,
    )


def flat(tensors) -> torch.Tensor:
    """Full values of (possibly sharded) tensors, concatenated (a collective under FSDP2)."""
    return torch.cat([full_tensor(t.detach()).flatten().clone() for t in tensors])


class Recorder(L.Callback):
    """Per optimizer step: full gradient (before clipping), reduce-scatters, parameters after."""

    def __init__(self, counter: CollectiveCounter | None = None):
        self.counter = counter
        self.grads, self.params, self.reduce_scatters = [], [], []
        self.initial = None

    def on_train_start(self, trainer, pl_module):
        self.initial = flat(pl_module.policy.parameters())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        # Callbacks run before the module's hook, so this is the gradient before clipping.
        self.grads.append(flat(p.grad for p in pl_module.policy.parameters()))
        if self.counter is not None:
            self.reduce_scatters.append(self.counter.calls)
            self.counter.calls = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.params.append(flat(pl_module.policy.parameters()))

    def summary(self, pl_module) -> dict:
        return {
            "initial": self.initial,
            "grads": self.grads,
            "params": self.params,
            "reduce_scatters": self.reduce_scatters,
            "logged_norms": getattr(pl_module, "logged_norms", None),
        }


def build(module_cls, overrides=None):
    torch.manual_seed(0)  # the tiny model's initial weights: the same in every run
    if issubclass(module_cls, DiffusionSFTModule):
        model = module_cls(policy=PolicySpec(tiny=TINY), eval_sampler=GREEDY, optim=OPTIM)
    else:
        model = module_cls(**rl_kwargs(**OVERRIDES, **(overrides or {})))
    model.policy.double()
    reference = model.__dict__.get("reference")
    if reference is not None:
        reference.double()
    return model


def fit(
    out_dir: Path,
    module_cls,
    steps: int,
    strategy=None,
    callbacks=(),
    ckpt_path=None,
    steps_per_epoch: int = MAX_STEPS,
    overrides=None,
):
    """One fit; under a strategy it runs in the already launched ranks."""
    model = build(module_cls, overrides)
    trainer = L.Trainer(
        default_root_dir=out_dir,
        accelerator="cpu",
        devices=WORLD if strategy is not None else 1,
        strategy=strategy or "auto",
        max_steps=steps,
        precision="32-true",
        logger=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=list(callbacks),
        use_distributed_sampler=False,  # InOrderData shards the prompts itself
    )
    batch = PROMPTS_PER_RANK if strategy is not None else WORLD * PROMPTS_PER_RANK
    data = data_module(batch, WORLD * PROMPTS_PER_RANK * steps_per_epoch)
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return model


def streams(model) -> dict[str, torch.Tensor]:
    return {name: model.generator(name).get_state() for name in ("rollout", "mask")}


def fsdp2() -> ModelParallelStrategy:
    return ModelParallelStrategy(
        data_parallel_size=WORLD,
        tensor_parallel_size=1,
        process_group_backend="gloo",
        timeout=timedelta(seconds=120),  # a stuck collective fails instead of hanging
    )


def _rank_main(local_rank: int, port: int, out_dir: str) -> None:
    """One of the two ranks, launched the way torchrun does (Lightning joins the group)."""
    join_as_rank(local_rank, WORLD, port)
    out = Path(out_dir)
    results = {}
    torch.set_num_threads(1)  # two ranks on a 2-core machine
    try:
        # Parity with one process, reduce-scatter count, full_state_dict and the HF export.
        with (
            CollectiveCounter(CollectiveCounter.REDUCE_SCATTERS) as counter,
            CollectiveCounter(CollectiveCounter.ALL_GATHERS) as all_gathers,
        ):
            recorder, export = Recorder(counter), HFExport(dirpath=str(out / "export"))
            model = fit(out / "parity", ReplayRL, MAX_STEPS, fsdp2(), [recorder, export])
            results["all_gathers"] = all_gathers.calls
            results["parity"] = recorder.summary(model)
            results["exported_to"] = export.saved_to
            results["fsdp_units"] = sum(isinstance(m, FSDPModule) for m in model.modules())
            state = full_state_dict(model.policy.model)
            results["full_state_dict"] = None if state is None else dict(state)
            if state is not None:  # save_pretrained empties the dictionary it is given
                model.policy.model.save_pretrained(out / "hf", state_dict=state)
            control = Recorder(counter)
            # Control: gradient_sync="every" reduce-scatters on every backward.
            every = {"gradient_sync": "every"}
            model = fit(out / "always", ReplayRL, 1, fsdp2(), [control], overrides=every)
            results["always"] = control.summary(model)
            sft = Recorder(counter)
            model = fit(out / "sft", NormLoggingSFT, MAX_STEPS, fsdp2(), [sft])
            results["sft"] = sft.summary(model)
        # Rollouts with the weights gathered once per rollout (SamplerConfig.gather_weights).
        with CollectiveCounter(CollectiveCounter.ALL_GATHERS) as all_gathers:
            gathered = Recorder()
            rollout = dataclasses.replace(SAMPLER, gather_weights=True)
            overrides = {"rollout": rollout}
            model = fit(
                out / "gathered", ReplayRL, MAX_STEPS, fsdp2(), [gathered], overrides=overrides
            )
            results["gathered"] = gathered.summary(model)
            results["gathered_all_gathers"] = all_gathers.calls
        # With a KL term: the frozen reference copy is sharded too.
        kl = Recorder()
        model = fit(out / "kl", ReplayRL, MAX_STEPS, fsdp2(), [kl], overrides=KL)
        results["kl"] = kl.summary(model)
        results["kl_reference_units"] = sum(
            isinstance(m, FSDPModule) for m in model.__dict__["reference"].modules()
        )
        # Resume from the distributed checkpoint of step 1, with the module's own (rank-seeded)
        # random streams and checkpoint hooks. One step per epoch: Lightning restarts an
        # interrupted epoch's data from its first batch (the loader keeps no state), so only an
        # end-of-epoch checkpoint can continue with the same prompts.
        checkpoint = ModelCheckpoint(dirpath=out / "ckpt", every_n_train_steps=1, save_top_k=-1)
        straight = fit(
            out / "straight", DenseRewardRL, MAX_STEPS, fsdp2(), [checkpoint], steps_per_epoch=1
        )
        results["straight"] = flat(straight.policy.parameters())
        results["straight_streams"] = streams(straight)
        step1 = out / "ckpt" / "epoch=0-step=1.ckpt"
        results["checkpoint_files"] = sorted(p.name for p in step1.iterdir())
        # Lightning's metadata file (every non-tensor entry), written by rank 0 alone.
        meta = torch.load(step1 / "meta.pt", weights_only=False)
        results["saved_streams_by_rank"] = meta.get("generator_states_by_rank")
        resumed = fit(
            out / "resumed", DenseRewardRL, MAX_STEPS, fsdp2(), ckpt_path=step1, steps_per_epoch=1
        )
        results["resumed"] = flat(resumed.policy.parameters())
        results["resumed_streams"] = streams(resumed)
        results["resumed_step"] = resumed.trainer.global_step
        torch.save(results, out / f"rank{local_rank}.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    # The results are saved: leave without the interpreter's teardown, where a native thread
    # of the distributed runtime once aborted a rank after a successful run ("terminate called
    # without an active exception"), failing every test of the module.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    with pytest.MonkeyPatch.context() as patch:
        # Spawned ranks unpickle this module by name: the repository root must be on sys.path
        # (not the case under ``--import-mode=importlib`` with plain ``pytest``).
        patch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
        # join=True waits for both ranks; if one fails the other is terminated.
        mp.spawn(_rank_main, args=(find_free_network_port(), str(out)), nprocs=WORLD)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    recorder, kl = Recorder(), Recorder()
    single = fit(out / "single", ReplayRL, MAX_STEPS, callbacks=[recorder])
    single_kl = fit(out / "single_kl", ReplayRL, MAX_STEPS, callbacks=[kl], overrides=KL)
    return {
        "ranks": ranks,
        "single": recorder.summary(single),
        "single_kl": kl.summary(single_kl),
        "module": single,
        "out": out,
    }


needs_gloo = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"
)


@needs_gloo
def test_fsdp2_steps_equal_one_process_on_both_ranks_prompts(runs):
    single = runs["single"]
    ranks = [r["parity"] for r in runs["ranks"]]
    assert len(single["grads"]) == len(single["params"]) == MAX_STEPS
    for rank in ranks:
        assert len(rank["grads"]) == len(rank["params"]) == MAX_STEPS
        torch.testing.assert_close(rank["initial"], single["initial"], rtol=0, atol=0)
    for step in range(MAX_STEPS):
        grad = single["grads"][step]
        assert grad.dtype == torch.float64 and grad.norm() > GRAD_CLIP
        for rank in ranks:
            # Gathered from the shards, each rank's gradient is the one of the whole batch.
            torch.testing.assert_close(rank["grads"][step], grad, rtol=1e-10, atol=1e-13)
            # The logged norm is a plain tensor holding the global norm, not a shard's.
            norm = rank["logged_norms"][step]
            assert type(norm) is torch.Tensor, type(norm)
            torch.testing.assert_close(norm, single["logged_norms"][step], rtol=1e-10, atol=0)
            torch.testing.assert_close(norm, grad.norm().float(), rtol=1e-6, atol=0)
            # Clipping by that norm and AdamW on the shards give the single process's step.
            torch.testing.assert_close(
                rank["params"][step], single["params"][step], rtol=1e-10, atol=1e-12
            )
        assert torch.equal(ranks[0]["params"][step], ranks[1]["params"][step])
    moved = single["params"][-1] - single["initial"]
    assert moved.abs().max() > 1e-3  # the steps did something


@needs_gloo
def test_fsdp2_with_a_sharded_kl_reference_equals_one_process(runs):
    single = runs["single_kl"]
    assert all(r["kl_reference_units"] == 3 for r in runs["ranks"])  # layers and root
    for rank in (r["kl"] for r in runs["ranks"]):
        for step in range(MAX_STEPS):
            torch.testing.assert_close(
                rank["grads"][step], single["grads"][step], rtol=1e-10, atol=1e-13
            )
            torch.testing.assert_close(
                rank["params"][step], single["params"][step], rtol=1e-10, atol=1e-12
            )
    # The KL gradient is 0 at the reference's weights (step 1), not after a step (step 2).
    without = runs["single"]["grads"]
    torch.testing.assert_close(single["grads"][0], without[0], rtol=1e-10, atol=1e-13)
    assert (single["grads"][1] - without[1]).norm() > 1e-3 * without[1].norm()


@needs_gloo
def test_one_reduce_scatter_per_fsdp_unit_and_step(runs):
    for rank in runs["ranks"]:
        units = rank["fsdp_units"]
        assert units == 3  # two decoder layers and the root
        # BGPO's 9 backwards reduce-scatter once per unit per step, like a single backward ...
        assert rank["parity"]["reduce_scatters"] == [units] * MAX_STEPS
        # ... and the counter does see every backward's when gradients sync each time.
        assert rank["always"]["reduce_scatters"] == [units * BACKWARDS_PER_STEP]
        torch.testing.assert_close(
            rank["always"]["grads"][0], rank["parity"]["grads"][0], rtol=1e-10, atol=1e-13
        )


@needs_gloo
def test_rollouts_with_gathered_weights_train_as_one_process_with_fewer_all_gathers(runs):
    single = runs["single"]
    for rank in runs["ranks"]:
        for step in range(MAX_STEPS):
            torch.testing.assert_close(
                rank["gathered"]["params"][step], single["params"][step], rtol=1e-10, atol=1e-12
            )
        # Each of a step's 2 rollouts (one per prompt, 4 forwards) gathers the 2 layers once
        # instead of at every forward: at least 6 all-gathers fewer per rollout.
        saved = rank["all_gathers"] - rank["gathered_all_gathers"]
        assert saved >= 6 * PROMPTS_PER_RANK * MAX_STEPS, saved


@needs_gloo
def test_resume_from_the_distributed_checkpoint_continues_identically(runs):
    for rank in runs["ranks"]:
        # A directory with one shard file per rank and Lightning's metadata.
        files = rank["checkpoint_files"]
        assert {"__0_0.distcp", "__1_0.distcp", "meta.pt", ".metadata"} <= set(files), files
        assert rank["resumed_step"] == MAX_STEPS
        # The optimizer state and parameters came back (and the streams: see below).
        torch.testing.assert_close(rank["resumed"], rank["straight"], rtol=1e-12, atol=1e-14)


@needs_gloo
def test_full_state_dict_gathers_the_weights_on_rank_zero(runs):
    expected = runs["module"].policy.model.state_dict()
    gathered, other = (r["full_state_dict"] for r in runs["ranks"])
    assert other is None
    assert set(gathered) == set(expected)
    for name, value in gathered.items():
        assert type(value) is torch.Tensor and value.device.type == "cpu", name
        torch.testing.assert_close(value, expected[name], rtol=1e-10, atol=1e-12)
    # save_pretrained with the gathered state dict writes a loadable checkpoint.
    exported = LlamaForCausalLM.from_pretrained(runs["out"] / "hf", dtype=torch.float64)
    for name, value in exported.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-10, atol=1e-12)


@needs_gloo
def test_sft_trains_under_fsdp2_with_one_reduce_scatter_per_unit_and_step(runs):
    first, second = (r["sft"] for r in runs["ranks"])
    units = runs["ranks"][0]["fsdp_units"]
    for rank in (first, second):
        assert rank["reduce_scatters"] == [units] * MAX_STEPS
        assert all(type(n) is torch.Tensor and n > 0 for n in rank["logged_norms"])
    assert (first["params"][-1] - first["initial"]).abs().max() > 1e-3  # it trained


@needs_gloo
def test_each_rank_resumes_its_own_streams_with_the_modules_checkpoint_hooks(runs):
    # Rank 0 alone wrote the metadata, with both ranks' generator states, indexed by rank.
    saved = runs["ranks"][0]["saved_streams_by_rank"]
    assert len(saved) == WORLD and set(saved[0]) == set(saved[1]) == {"mask", "rollout"}
    assert not torch.equal(saved[0]["rollout"], saved[1]["rollout"])  # the ranks' own streams
    for rank in runs["ranks"]:
        # ... and each rank continued its own streams: the same states as without the resume.
        for name, state in rank["straight_streams"].items():
            assert torch.equal(rank["resumed_streams"][name], state), name
    first, second = (r["straight_streams"]["rollout"] for r in runs["ranks"])
    assert not torch.equal(first, second)


@needs_gloo
def test_hf_export_at_the_end_of_fsdp2_fit_writes_the_full_weights_once(runs):
    first, second = (r["exported_to"] for r in runs["ranks"])
    assert first == runs["out"] / "export" and second is None  # recorded on global zero
    # The directory loads as a policy (model and tokenizer) holding the single process's
    # weights after the same steps: full weights, gathered from both ranks' shards.
    loaded, tokenizer = build_policy(PolicySpec(path=str(first)))
    expected = runs["module"].policy
    assert loaded.mask_token_id == expected.mask_token_id == tokenizer.mask_token_id
    exported = loaded.model.state_dict()
    assert set(exported) == set(expected.model.state_dict())
    for name, value in expected.model.state_dict().items():
        assert exported[name].dtype == torch.float64, name
        torch.testing.assert_close(exported[name], value, rtol=1e-10, atol=1e-12, msg=name)
