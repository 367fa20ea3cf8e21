"""LightningDataModule serving task prompts as batches of :class:`Example` lists."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from bgpo_lightning.tasks.base import Example
from bgpo_lightning.tasks.registry import get_task
from bgpo_lightning.tasks.resumable_loader import ResumableDataLoader

SPLITS = ("train", "val", "test")

# Splits a stage needs; generated val/test are built after train to stay disjoint from it.
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}


def collate_examples(batch: list[Example]) -> list[Example]:
    """Keeps a batch as a plain list: examples are text and metadata, not tensors."""
    return list(batch)


def split_seed(seed: int, split: str) -> int:
    """Independent, reproducible generator seed for one split."""
    return random.Random(f"{split}:{seed}").getrandbits(63)


class PromptDataModule(L.LightningDataModule):
    """Train/val/test prompts of one task, loaded from JSON-lines files or generated.

    Batches are lists of :class:`Example`; the same loaders serve RL (prompts) and SFT
    (``Example.target`` is the response).

    Args:
        task: Task name, see :data:`bgpo_lightning.tasks.registry.TASKS`.
        task_kwargs: Task constructor arguments (e.g. ``{"max_empty": 8}``).
        train_path: Training data: a JSON-lines file (``.jsonl``/``.jsonl.gz``), a Hub source
            ``hf:<dataset>[:<config>]:<split>`` (needs ``datasets`` and network), or a list of
            them, concatenated (e.g. MATH + GSM8K); ``None`` generates the split procedurally.
        val_path: Validation data, as ``train_path``; ``None`` generates it, disjoint from train.
        test_path: Test data, as ``train_path``; ``None`` generates it, disjoint from both.
        num_train: Generated training examples, or for data sources the first rows used,
            in order over the list (``None``: all rows; required when generating).
        num_val: As ``num_train``, for validation.
        num_test: As ``num_train``, for test.
        batch_size: Prompts per training step.
        val_batch_size: Prompts per validation/test batch.
        seed: Seeds generation and the training shuffle order.
        num_workers: DataLoader worker processes.
        require_targets: Drop training examples without an SFT target (``target == ""``,
            e.g. unsolvable Countdown rows); set it for supervised warm-starts.
    """

    def __init__(
        self,
        task: str = "sudoku",
        task_kwargs: dict[str, Any] | None = None,
        train_path: str | list[str] | None = None,
        val_path: str | list[str] | None = None,
        test_path: str | list[str] | None = None,
        num_train: int | None = 2000,
        num_val: int | None = 256,
        num_test: int | None = 256,
        batch_size: int = 8,
        val_batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
        require_targets: bool = False,
    ) -> None:
        super().__init__()
        # Not sent to the logger: Lightning merges module and datamodule hparams there and
        # refuses equal names with different values, which would tie the module's seed to the
        # data seed. The checkpoint and the CLI's config.yaml still record every setting.
        self.save_hyperparameters(logger=False)
        for name, value in (("batch_size", batch_size), ("val_batch_size", val_batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")
        self.task = get_task(task, **(task_kwargs or {}))
        self.paths = {"train": train_path, "val": val_path, "test": test_path}
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.require_targets = require_targets
        self._examples: dict[str, list[Example]] = {}

    def setup(self, stage: str | None = None) -> None:
        """Loads or generates the splits the stage needs (all of them for ``None``)."""
        for split in _STAGE_SPLITS.get(stage, SPLITS):
            self.examples(split)

    def examples(self, split: str) -> list[Example]:
        """The examples of ``"train"``, ``"val"`` or ``"test"``, built on first use."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        if split not in self._examples:
            self._examples[split] = self._build(split)
        return self._examples[split]

    def _build(self, split: str) -> list[Example]:
        path, size = self.paths[split], self.sizes[split]
        if path is not None:
            examples = []
            for source in [path] if isinstance(path, str) else path:
                left = None if size is None else size - len(examples)
                if left == 0:
                    break
                examples += self.task.load(source, limit=left)
        else:
            if size is None:
                raise ValueError(f"num_{split} must be set to generate the {split} split")
            earlier = SPLITS[: SPLITS.index(split)]
            exclude = {e.prompt for s in earlier for e in self.examples(s)}
            examples = self.task.generate(size, seed=split_seed(self.seed, split), exclude=exclude)
        if split == "train":
            if self.require_targets:
                examples = [e for e in examples if e.target]
            if not examples:
                raise ValueError(f"{self.task.name}: the training split is empty")
        return examples

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        # Batches are text; the module makes tensors on its device when it tokenizes them.
        return batch

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        common = dict(
            collate_fn=collate_examples,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
        if not shuffle:
            return DataLoader(self.examples(split), batch_size=batch_size, **common)
        # The shuffle order is a function of (seed, epoch) and the loader's position in the epoch
        # is checkpointed, so a mid-epoch resume continues with the batches not yet seen. Under
        # DDP/FSDP it shards by the strategy's data-parallel rank itself (Lightning then leaves
        # its sampler in place), so every rank resumes its own share.
        parallel = (self.trainer.distributed_sampler_kwargs if self.trainer else None) or {}
        return ResumableDataLoader(
            self.examples(split),  # a list is a valid map-style dataset
            batch_size=batch_size,
            seed=self.seed,
            num_replicas=parallel.get("num_replicas", 1),
            rank=parallel.get("rank", 0),
            **common,
        )

    def train_dataloader(self) -> ResumableDataLoader:
        """Shuffled training prompts, ``batch_size`` per batch, resumable mid-epoch."""
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation prompts in fixed order, ``val_batch_size`` per batch."""
        return self._loader("val", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test prompts in fixed order, ``val_batch_size`` per batch."""
        return self._loader("test", self.val_batch_size, shuffle=False)
