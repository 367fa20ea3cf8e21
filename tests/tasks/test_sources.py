"""Data sources: plain and gzipped JSON lines, Hub datasets, lists of sources per split."""

from __future__ import annotations

import gzip
import json
import sys
import types
from pathlib import Path

import pytest

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.tasks import DatasetFormatError, PromptDataModule
from bgpo_lightning.tasks.sources import parse_hub_source, read_rows
from bgpo_lightning.tasks.sudoku import SudokuTask

ROWS = [
    {"puzzle": "3102200002100320", "solution": "3142243142131324"},
    {"puzzle": "0000000000000000", "solution": "1234341221434321"},
    {"puzzle": "1200000000000000", "solution": "1234341221434321"},
]


def write_jsonl(path: Path, rows: list, gz: bool = False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_gzipped_file_reads_like_the_plain_one(tmp_path):
    plain = write_jsonl(tmp_path / "a.jsonl", ROWS)
    packed = write_jsonl(tmp_path / "a.jsonl.gz", ROWS, gz=True)
    task = SudokuTask()
    assert task.load(plain) == task.load(packed)
    assert [row for _, row in read_rows(packed)] == ROWS
    assert [where for where, _ in read_rows(packed)][1] == f"{packed} line 2"


def test_bad_gzipped_line_names_file_and_line(tmp_path):
    packed = write_jsonl(tmp_path / "b.jsonl.gz", [ROWS[0], "not an object"], gz=True)
    with pytest.raises(DatasetFormatError, match=r"b\.jsonl\.gz line 2: expected a JSON object"):
        SudokuTask().load(packed)


@pytest.fixture
def fake_datasets(monkeypatch):
    """A stand-in `datasets` module: records calls, serves rows (the Hub is unreachable here)."""
    calls = []
    tables = {("org/sudoku", None, "test"): ROWS, ("org/sudoku", "cfg", "train"): ROWS[:2]}

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return list(tables[name, config, split])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_hub_sources_go_through_datasets_load_dataset(fake_datasets, tmp_path):
    task = SudokuTask()
    assert task.load("hf:org/sudoku:test") == task.load(write_jsonl(tmp_path / "r.jsonl", ROWS))
    assert len(task.load("hf:org/sudoku:cfg:train")) == 2
    assert fake_datasets[:1] == [("org/sudoku", None, "test")]
    assert ("org/sudoku", "cfg", "train") in fake_datasets


def test_bad_hub_row_names_source_and_row(fake_datasets, monkeypatch):
    bad = [ROWS[0], {"puzzle": "12"}]
    monkeypatch.setitem(
        sys.modules,
        "datasets",
        types.SimpleNamespace(load_dataset=lambda name, config=None, split=None: bad),
    )
    with pytest.raises(DatasetFormatError, match=r"hf:org/x:test row 1: .*solution"):
        SudokuTask().load("hf:org/x:test")


def test_hub_source_without_datasets_is_a_clear_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import raises ImportError
    with pytest.raises(ConfigError, match="needs the `datasets` package"):
        SudokuTask().load("hf:openai/gsm8k:main:test")


@pytest.mark.parametrize("source", ["hf:", "hf:name", "hf:a:b:c:d", "hf::test"])
def test_malformed_hub_source(source):
    with pytest.raises(ConfigError, match="hf:<dataset>"):
        parse_hub_source(source)


def test_a_list_of_sources_is_concatenated_and_capped_in_order(tmp_path):
    first = write_jsonl(tmp_path / "first.jsonl", ROWS[:2])
    second = write_jsonl(tmp_path / "second.jsonl.gz", ROWS[2:], gz=True)
    data = PromptDataModule(
        task="sudoku", train_path=[str(first), str(second)], num_train=None, num_val=2, num_test=2
    )
    train = data.examples("train")
    assert [e.meta["solution"] for e in train] == [r["solution"] for r in ROWS]
    capped = PromptDataModule(
        task="sudoku", train_path=[str(first), str(second)], num_train=1, num_val=2, num_test=2
    )
    assert len(capped.examples("train")) == 1
    missing = PromptDataModule(task="sudoku", train_path=[str(first), str(tmp_path / "nope")])
    with pytest.raises(FileNotFoundError, match="nope"):
        missing.examples("train")
