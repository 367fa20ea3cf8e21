"""ResumableDataLoader: a pure (seed, epoch) shuffle whose mid-epoch position survives a resume,
alone, through a real DiffusionRLModule fit, and under 2-process gloo DDP."""

from __future__ import annotations

import warnings
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
from torch.utils.data import DataLoader, DistributedSampler

from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.tasks import PromptDataModule
from bgpo_lightning.tasks.datamodule import collate_examples
from bgpo_lightning.tasks.resumable_loader import ResumableDataLoader
from tests.helpers import join_as_rank
from tests.modules.conftest import rl_kwargs

DATA = list(range(10))  # batch_size 3: batches of 3, 3, 3, 1


def loader(seed=0, epoch=None, **kwargs) -> ResumableDataLoader:
    out = ResumableDataLoader(DATA, batch_size=3, seed=seed, collate_fn=list, **kwargs)
    if epoch is not None:
        out.sampler.set_epoch(epoch)
    return out


def take(it, k):
    return [next(it) for _ in range(k)]


def test_order_is_a_function_of_seed_and_epoch():
    epoch0 = list(loader())
    assert sorted(sum(epoch0, [])) == DATA and [len(b) for b in epoch0] == [3, 3, 3, 1]
    assert list(loader()) == epoch0
    assert list(loader(seed=1)) != epoch0
    # Epoch 1 does not depend on whether epoch 0 was drawn first (no generator state carried).
    epoch1 = list(loader(epoch=1))
    assert epoch1 != epoch0
    two_passes = loader()
    assert list(two_passes) == epoch0 and list(two_passes) == epoch1  # a full pass moves on
    interrupted = loader()
    take(iter(interrupted), 2)
    assert list(interrupted) == epoch0  # an abandoned pass restarts its epoch


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize(("epoch", "k"), [(0, 1), (1, 2), (1, 0)])
def test_state_after_k_batches_resumes_the_rest_then_the_next_epoch(epoch, k, num_workers):
    full, following = list(loader(epoch=epoch)), list(loader(epoch=epoch + 1))
    first = loader(epoch=epoch, num_workers=num_workers)
    assert take(iter(first), k) == full[:k]
    state = first.state_dict()
    assert state == {"epoch": epoch, "batches_yielded": k}
    fresh = loader(num_workers=num_workers)
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state
    fresh.sampler.set_epoch(epoch)  # what Lightning does next: the same epoch keeps the skip
    rest = iter(fresh)
    assert take(rest, 1) == full[k : k + 1]
    assert fresh.state_dict() == {"epoch": epoch, "batches_yielded": k + 1}
    assert list(rest) == full[k + 1 :]
    assert list(fresh) == following


def test_state_at_the_end_of_an_epoch_moves_on_to_the_next():
    done = loader(epoch=2)
    list(done)
    assert done.state_dict() == {"epoch": 2, "batches_yielded": 4}
    fresh = loader()
    fresh.load_state_dict(done.state_dict())
    assert fresh.state_dict() == {"epoch": 3, "batches_yielded": 0}
    assert list(fresh) == list(loader(epoch=3))


def test_ranks_split_the_same_permutation_and_each_resumes_its_share():
    data = list(range(12))
    ranks = [
        ResumableDataLoader(data, batch_size=2, num_replicas=2, rank=r, collate_fn=list)
        for r in (0, 1)
    ]
    # A DistributedSampler, so Lightning does not swap in its own under DDP.
    assert all(isinstance(r.sampler, DistributedSampler) for r in ranks)
    shards = [sum(list(r), []) for r in ranks]
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == data
    for rank, shard in enumerate(shards):
        resumed = ResumableDataLoader(
            data, batch_size=2, num_replicas=2, rank=rank, collate_fn=list
        )
        resumed.load_state_dict({"epoch": 0, "batches_yielded": 2})
        assert sum(list(resumed), []) == shard[4:]


# --- through a real fit -------------------------------------------------------------------------

STEPS = 7  # single process: 4 batches per epoch, so epoch 0 and 3 steps of epoch 1
RESUME_AT = (2, 5)  # mid-epoch 0 and mid-epoch 1


class DenseRewardRL(DiffusionRLModule):
    """A dense reward of the text, so every batch moves the parameters (the untrained model
    almost never scores on Sudoku, and all-tied groups give a zero gradient)."""

    def _scores(self, texts, examples):
        rewards = torch.tensor([sum(map(ord, text)) % 97 / 97 for text in texts])
        return rewards, torch.zeros_like(rewards)


class PromptRecorder(L.Callback):
    def __init__(self):
        self.batches: list[list[str]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append([e.prompt for e in batch])


class PlainLoaderData(PromptDataModule):
    """The previous train loader: a plain DataLoader shuffled by a seeded generator."""

    def train_dataloader(self):
        return DataLoader(
            self.examples("train"),
            batch_size=self.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(self.seed),
            collate_fn=collate_examples,
        )


def data(cls=PromptDataModule, num_train=8):
    compact = {"prompt_template": "Sudoku {puzzle}=", "target_template": "{solution}"}
    return cls(
        task="sudoku",
        task_kwargs={**compact, "reward_mode": "lenient"},
        num_train=num_train,
        num_val=4,
        num_test=4,
        batch_size=2,
    )


def fit(root: Path, datamodule, steps, ckpt_path=None, save=False, **trainer_kwargs):
    """A float64 fit; returns (prompts per batch, final parameters, warnings)."""
    torch.manual_seed(0)  # the tiny model's initial weights
    model = DenseRewardRL(**rl_kwargs(optim=OptimConfig(lr=1e-3), num_mc_samples=1))
    # Lightning loads a checkpoint before "64-true" converts the module: a float32 module would
    # round the restored weights (by ~1e-8), which is not what this test is about.
    model.to(torch.float64)
    recorder = PromptRecorder()
    callbacks = [recorder]
    if save:  # a checkpoint after every step: what an interruption at that step leaves
        callbacks.append(
            ModelCheckpoint(root / "ckpt", filename="{step}", every_n_train_steps=1, save_top_k=-1)
        )
    trainer = L.Trainer(
        default_root_dir=root,
        max_steps=steps,
        accelerator="cpu",
        precision="64-true",
        logger=False,
        enable_checkpointing=save,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=callbacks,
        **{"devices": 1, **trainer_kwargs},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, datamodule, ckpt_path=ckpt_path)
    params = torch.cat([p.detach().flatten() for p in model.policy.parameters()])
    return recorder.batches, params, [str(w.message) for w in caught]


def not_resumable(messages):
    return any("dataloader is not resumable" in m for m in messages)


def test_a_resumed_fit_sees_the_uninterrupted_batches_and_ends_with_its_parameters(tmp_path):
    prompts, params, _ = fit(tmp_path, data(), STEPS, save=True)
    assert len(prompts) == STEPS and prompts[4] != prompts[0]  # epoch 1 is a new order
    for step in RESUME_AT:
        ckpt = tmp_path / "ckpt" / f"step={step}.ckpt"
        rest, resumed, messages = fit(tmp_path / f"from{step}", data(), STEPS, ckpt_path=ckpt)
        assert rest == prompts[step:], step
        torch.testing.assert_close(resumed, params, rtol=1e-12, atol=1e-12)
        assert not not_resumable(messages)

    # Control: the old plain loader replays epoch 0's first batches and ends elsewhere.
    plain_prompts, plain_params, _ = fit(tmp_path / "plain", data(PlainLoaderData), 4, save=True)
    ckpt = tmp_path / "plain" / "ckpt" / "step=2.ckpt"
    rest, resumed, messages = fit(tmp_path / "plain2", data(PlainLoaderData), 4, ckpt_path=ckpt)
    assert not_resumable(messages)
    assert rest == plain_prompts[:2] != plain_prompts[2:]  # replayed, not continued
    assert (resumed - plain_params).abs().max() > 1e-6


# --- under DDP ---------------------------------------------------------------------------------

WORLD = 2
DDP_STEPS = 5  # 12 prompts: 3 batches per rank per epoch
DDP_RESUME_AT = (1, 4)


def _rank_main(local_rank: int, port: int, out_dir: str) -> None:
    join_as_rank(local_rank, WORLD, port)
    out = Path(out_dir)

    def ddp_fit(root, **kwargs):  # a strategy object serves one Trainer only
        strategy = DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=120))
        return fit(root, data(num_train=12), DDP_STEPS, devices=WORLD, strategy=strategy, **kwargs)

    try:
        results = {"straight": ddp_fit(out, save=True)[:2]}
        for step in DDP_RESUME_AT:
            results[step] = ddp_fit(
                out / f"from{step}", ckpt_path=out / "ckpt" / f"step={step}.ckpt"
            )
        torch.save(results, out / f"rank{local_rank}.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="gloo")
def test_each_ddp_rank_resumes_its_own_share(tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).resolve().parents[2]))  # the ranks import tests.*
        mp.spawn(_rank_main, args=(find_free_network_port(), str(tmp_path)), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    shares = [r["straight"][0] for r in ranks]
    assert all(len(s) == DDP_STEPS for s in shares)
    epoch0 = [p for share in shares for batch in share[:3] for p in batch]
    assert len(set(epoch0)) == 12  # the ranks split the epoch between them
    torch.testing.assert_close(ranks[0]["straight"][1], ranks[1]["straight"][1], rtol=0, atol=0)
    for step in DDP_RESUME_AT:
        for rank in ranks:
            rest, params, messages = rank[step]
            assert rest == rank["straight"][0][step:], step
            torch.testing.assert_close(params, rank["straight"][1], rtol=1e-12, atol=1e-12)
            assert not not_resumable(messages)


def test_one_replica_order_is_the_plain_shuffled_loaders_that_published_runs_used():
    examples = list(range(37))
    plain = DataLoader(
        examples, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(7)
    )
    resumable = ResumableDataLoader(examples, batch_size=5, seed=7)
    for epoch in range(3):
        resumable.sampler.set_epoch(epoch)  # what Lightning does before each epoch
        assert [b.tolist() for b in resumable] == [b.tolist() for b in plain], epoch
