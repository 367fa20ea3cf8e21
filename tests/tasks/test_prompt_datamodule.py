"""Tests for PromptDataModule: splits, disjointness, batching, determinism, file errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgpo_lightning.tasks import (
    CountdownTask,
    DatasetFormatError,
    Example,
    PromptDataModule,
    SudokuTask,
)


def _prompts(batches) -> list[str]:
    return [ex.prompt for batch in batches for ex in batch]


def test_generated_splits_sizes_and_disjointness() -> None:
    dm = PromptDataModule(task="sudoku", num_train=120, num_val=40, num_test=30, seed=5)
    dm.setup()
    assert isinstance(dm.task, SudokuTask)
    train, val, test = (dm.examples(s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (120, 40, 30)
    train_p, val_p, test_p = ({e.prompt for e in s} for s in (train, val, test))
    assert not train_p & val_p and not train_p & test_p and not val_p & test_p


def test_train_loader_yields_example_lists_of_batch_size() -> None:
    dm = PromptDataModule(task="countdown", num_train=21, num_val=10, batch_size=4, seed=0)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert [len(b) for b in batches] == [4, 4, 4, 4, 4, 1]
    assert all(isinstance(b, list) and all(isinstance(e, Example) for e in b) for b in batches)
    assert sorted(_prompts(batches)) == sorted(e.prompt for e in dm.examples("train"))
    val = list(dm.val_dataloader())
    assert [len(b) for b in val] == [10]
    assert _prompts(val) == [e.prompt for e in dm.examples("val")]  # fixed order


def test_order_is_deterministic_given_seed_and_shuffled() -> None:
    def first_epoch(seed: int) -> list[str]:
        dm = PromptDataModule(task="sudoku", num_train=64, num_val=8, batch_size=8, seed=seed)
        dm.setup("fit")
        return _prompts(dm.train_dataloader())

    a = first_epoch(1)
    assert a == first_epoch(1)
    assert a != first_epoch(2)
    dm = PromptDataModule(task="sudoku", num_train=64, num_val=8, batch_size=8, seed=1)
    dm.setup("fit")
    assert a != [e.prompt for e in dm.examples("train")]  # shuffled, not file order
    loader = dm.train_dataloader()
    assert _prompts(loader) != _prompts(loader)  # each epoch reshuffles


def test_task_kwargs_are_forwarded() -> None:
    dm = PromptDataModule(task="countdown", task_kwargs={"num_numbers": [4]}, num_train=5)
    assert isinstance(dm.task, CountdownTask)
    assert all(len(e.meta["numbers"]) == 4 for e in dm.examples("train"))


def test_unknown_task_name() -> None:
    known = "countdown, gsm8k, humaneval, math, math_mix, mbpp, sudoku"
    with pytest.raises(ValueError, match=rf"^unknown task 'foo'; choose one of: {known}$"):
        PromptDataModule(task="foo")


def _write_countdown(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_files_cap_rows_and_generated_val_avoids_file_train(tmp_path: Path) -> None:
    rows = [{"numbers": [3, 5, 2], "target": t} for t in (16, 10, 0, 1, 999)]
    train = _write_countdown(tmp_path / "train.jsonl", rows)
    dm = PromptDataModule(task="countdown", train_path=train, num_train=3, num_val=20)
    dm.setup("fit")
    assert [e.meta["target"] for e in dm.examples("train")] == [16, 10, 0]
    assert not {e.prompt for e in dm.examples("train")} & {e.prompt for e in dm.examples("val")}
    all_rows = PromptDataModule(task="countdown", train_path=train, num_train=None)
    assert len(all_rows.examples("train")) == 5


def test_require_targets_drops_unsolvable_training_rows(tmp_path: Path) -> None:
    rows = [{"numbers": [3, 5, 2], "target": 16}, {"numbers": [1, 1, 1], "target": 100}]
    path = _write_countdown(tmp_path / "rows.jsonl", rows)
    kept = PromptDataModule(task="countdown", train_path=path, val_path=path, num_train=None)
    assert [e.target for e in kept.examples("train")] == ["<answer>\n(3+5)*2\n</answer>", ""]
    sft = PromptDataModule(
        task="countdown", train_path=path, val_path=path, num_train=None, require_targets=True
    )
    assert [e.target for e in sft.examples("train")] == ["<answer>\n(3+5)*2\n</answer>"]
    assert len(sft.examples("val")) == 2  # evaluation keeps every row

    only_bad = _write_countdown(tmp_path / "bad.jsonl", rows[1:])
    dm = PromptDataModule(task="countdown", train_path=only_bad, require_targets=True)
    with pytest.raises(ValueError, match="training split is empty"):
        dm.setup("fit")


def test_missing_and_bad_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    dm = PromptDataModule(task="sudoku", val_path=str(missing), num_train=4)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        dm.setup("validate")

    bad = tmp_path / "bad_rows.jsonl"
    bad.write_text('{"puzzle": "3102200002100320", "solution": "3142243142131324"}\n{oops\n')
    dm = PromptDataModule(task="sudoku", test_path=str(bad), num_train=4, num_val=4)
    with pytest.raises(DatasetFormatError, match=r"bad_rows\.jsonl line 2: invalid JSON"):
        dm.setup("test")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"val_batch_size": 0}, "val_batch_size"),
        ({"num_train": -1}, "num_train"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PromptDataModule(**kwargs)


def test_generating_needs_a_size() -> None:
    dm = PromptDataModule(task="sudoku", num_train=None)
    with pytest.raises(ValueError, match="num_train must be set"):
        dm.setup("fit")


def test_hyperparameters_are_saved() -> None:
    dm = PromptDataModule(task="sudoku", task_kwargs={"max_empty": 8}, num_train=3, seed=9)
    assert dm.hparams["task_kwargs"] == {"max_empty": 8}
    assert dm.hparams["seed"] == 9 and dm.hparams["num_train"] == 3
