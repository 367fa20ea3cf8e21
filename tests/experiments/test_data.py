"""experiments.data against a stand-in `datasets` module: files, schemas, errors, skipping."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import experiments.data.__main__ as cli
from bgpo_lightning.tasks import PromptDataModule
from experiments.data.catalog import D1_FILES, SPLITS, TRAIN_ROWS
from experiments.data.hub import OFFLINE_VARIABLES
from experiments.data.jsonl import write_jsonl

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "datasets"

# Output keys, in the order of the files in ../shared/datasets.
SCHEMAS = {
    "gsm8k": ["question", "answer"],
    "math": ["problem", "answer"],
    "math500": ["problem", "answer"],
    "countdown": ["numbers", "target"],
    "sudoku": ["puzzle", "solution"],
    "mbpp": ["text", "code", "task_id", "test_setup_code", "test_list", "challenge_test_list"],
}


def mbpp_row(task_id: int) -> dict:
    return {
        "task_id": task_id,
        "text": f"Write a function to add {task_id} to a number.",
        "code": f"def add_{task_id}(x):\r\n    return x + {task_id}",
        "test_list": [f"assert add_{task_id}(1) == {task_id + 1}"],
        "test_setup_code": "",
        "challenge_test_list": [],
    }


# Rows shaped like each real source (columns as on the Hub or in d1's files).
TABLES = {
    ("openai/gsm8k", "main", "train"): [
        {
            "question": "Natalia sold clips to 48 of her friends in April, and then she sold half "
            "as many clips in May. How many clips did Natalia sell altogether in April and May?",
            "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
            "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
        },
        {
            "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 "
            "minutes of babysitting. How much did she earn?",
            "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
            "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10",
        },
    ],
    ("openai/gsm8k", "main", "test"): [
        {
            "question": "Janet’s ducks lay 16 eggs per day. She eats three and bakes with four. "
            "She sells the rest for $2 each. How much does she make every day?",
            "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
            "She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18",
        }
    ],
    ("DigitalLearningGmbH/MATH-lighteval", "default", "train"): [
        {
            "problem": "What is $\\frac{1}{2} + \\frac{1}{3}$?",
            "level": "Level 1",
            "solution": "We get $\\frac{3}{6} + \\frac{2}{6} = \\boxed{\\frac{5}{6}}$.",
            "type": "Prealgebra",
        },
        {
            "problem": "If $x + 2 = 5$, what is $x$?",
            "level": "Level 1",
            "solution": "Try $\\boxed{4}$: too big. Subtracting, $x = \\boxed{3}$.",
            "type": "Algebra",
        },
        {
            "problem": "How many primes lie between $n!+1$ and $n!+n$?",
            "level": "Level 5",
            "solution": "None of them is prime, so the answer is (A).",
            "type": "Number Theory",
        },
    ],
    ("HuggingFaceH4/MATH-500", None, "test"): [
        {
            "problem": "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.",
            "solution": "We have $r = 3$ and $\\theta = \\frac{\\pi}{2}$, so "
            "$\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$.",
            "answer": "\\left( 3, \\frac{\\pi}{2} \\right)",
            "subject": "Precalculus",
            "level": 2,
            "unique_id": "test/precalculus/807.json",
        }
    ],
    ("Jiayi-Pan/Countdown-Tasks-3to4", None, "train"): [
        {"target": 98, "nums": [44, 19, 35]},
        {"target": 64, "nums": [63, 95, 96]},
        {"target": 55, "nums": [66, 33, 28, 11]},
    ],
    D1_FILES + "countdown_cd3_test.jsonl": [
        {"input": "30,100,93", "output": "23"},
        {"input": "83,18,75", "output": "10"},
    ],
    D1_FILES + "4x4_sudoku_unique_puzzles.csv": [
        {"Puzzle": "0321003004002100", "Solution": "4321123434122143"},
        {"Puzzle": "1400000032104020", "Solution": "1432234132144123"},
    ],
    D1_FILES + "4x4_test_sudoku.csv": [
        {"Puzzle": "3102200002100320", "Solution": "3142243142131324"},
        {"Puzzle": "0140432014020000", "Solution": "2143432114323214"},
    ],
    ("google-research-datasets/mbpp", "full", "train"): [mbpp_row(601), mbpp_row(602)],
    ("google-research-datasets/mbpp", "full", "validation"): [mbpp_row(511)],
    ("google-research-datasets/mbpp", "full", "test"): [mbpp_row(11), mbpp_row(12)],
    ("google-research-datasets/mbpp", "full", "prompt"): [mbpp_row(i) for i in (2, 3, 4)],
}


def source_key(spec) -> str | tuple:
    """The key of a spec's table in TABLES: its URL, or its Hub (path, config, split)."""
    source = spec.source
    return source.data_files or (source.path, source.config, source.split)


class StandIn:
    """A stand-in `datasets` module: serves TABLES, records calls, raises ``errors[key]``
    (``errors[None]``: on every call)."""

    def __init__(self) -> None:
        self.tables = copy.deepcopy(TABLES)
        self.calls: list = []
        self.errors: dict = {}

    def load_dataset(self, path, name=None, *, split, data_files=None, features=None):
        key = data_files or (path, name, split)
        self.calls.append(key)
        error = self.errors.get(key, self.errors.get(None))
        if error is not None:
            raise error
        rows = copy.deepcopy(self.tables[key])
        if path == "csv" and features is None:  # as pandas guesses: digits become numbers
            rows = [{k: int(v) if v.isdigit() else v for k, v in r.items()} for r in rows]
        return rows


@pytest.fixture(autouse=True)
def online(monkeypatch):
    for variable in OFFLINE_VARIABLES:  # a machine may set these globally
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def hub(monkeypatch) -> StandIn:
    stand_in = StandIn()
    module = types.SimpleNamespace(
        load_dataset=stand_in.load_dataset, Features=dict, Value=lambda dtype: dtype
    )
    monkeypatch.setitem(sys.modules, "datasets", module)
    return stand_in


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def loaded(task: str, folder: Path, train: list[str], val: str, test: str) -> PromptDataModule:
    """Every split of the written files, read by the task's own loader."""
    data = PromptDataModule(
        task=task,
        train_path=[str(folder / p) for p in train],
        val_path=str(folder / val),
        test_path=str(folder / test),
        num_train=None,
        num_val=None,
        num_test=None,
    )
    data.setup()
    return data


def test_every_file_is_written_in_its_schema_and_loads_through_the_tasks(hub, tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path)]) == 0

    out = capsys.readouterr().out.splitlines()
    counts = {spec.relpath: len(TABLES[source_key(spec)]) for spec in SPLITS}
    assert out == [f"wrote {tmp_path / p}: {n} rows" for p, n in counts.items()]
    assert files_under(tmp_path) == sorted(tmp_path / p for p in counts)  # no temporary files
    for spec in SPLITS:
        for row in read(tmp_path / spec.relpath):
            assert list(row) == SCHEMAS[spec.dataset], spec.relpath

    math = loaded(
        "math_mix",
        tmp_path,
        ["gsm8k/train.jsonl", "math/train.jsonl"],
        "math500/test.jsonl",
        "gsm8k/test.jsonl",
    )
    # The last \boxed{} of each MATH solution; a solution without one leaves no answer.
    assert [e.meta["answer"] for e in math.examples("train")] == [
        "72",
        "10",
        "\\frac{5}{6}",
        "3",
        "",
    ]
    assert [e.meta["answer"] for e in math.examples("val")] == [
        "\\left( 3, \\frac{\\pi}{2} \\right)"
    ]
    assert [e.meta["answer"] for e in math.examples("test")] == ["18"]

    countdown = loaded(
        "countdown", tmp_path, ["countdown/train.jsonl"], *["countdown/test.jsonl"] * 2
    )
    assert len(countdown.examples("train")) == 3
    assert [e.meta["numbers"] for e in countdown.examples("test")] == [(30, 100, 93), (83, 18, 75)]
    sudoku = loaded("sudoku", tmp_path, ["sudoku/train.jsonl"], *["sudoku/test.jsonl"] * 2)
    # Leading zeros survive the CSV.
    assert [e.meta["puzzle"] for e in sudoku.examples("train")] == [
        "0321003004002100",
        "1400000032104020",
    ]
    assert len(sudoku.examples("test")) == 2

    # 3-shot prompts: tasks 2, 3 and 4 from the prompt.jsonl beside each split.
    code = loaded(
        "mbpp", tmp_path, ["mbpp/train.jsonl"], "mbpp/validation.jsonl", "mbpp/test.jsonl"
    )
    assert [e.meta["task_id"] for e in code.examples("test")] == [11, 12]
    assert code.examples("train")[0].prompt.count("[BEGIN]") == 4


def test_countdown_and_sudoku_train_are_the_first_rows_of_their_sources(hub, tmp_path, monkeypatch):
    assert {s.relpath.as_posix(): s.limit for s in SPLITS if s.limit} == {
        "countdown/train.jsonl": TRAIN_ROWS,
        "sudoku/train.jsonl": TRAIN_ROWS,
    }
    monkeypatch.setattr(
        cli, "SPLITS", tuple(dataclasses.replace(s, limit=2 if s.limit else None) for s in SPLITS)
    )
    assert cli.main(["--out", str(tmp_path), "--only", "countdown"]) == 0
    assert read(tmp_path / "countdown/train.jsonl") == [
        {"numbers": [44, 19, 35], "target": 98},
        {"numbers": [63, 95, 96], "target": 64},
    ]
    assert read(tmp_path / "countdown/test.jsonl") == [
        {"numbers": [30, 100, 93], "target": 23},
        {"numbers": [83, 18, 75], "target": 10},
    ]


def test_existing_files_are_kept_and_force_rewrites_them(hub, tmp_path, capsys):
    args = ["--out", str(tmp_path), "--only", "gsm8k", "math500"]
    assert cli.main(args) == 0
    assert files_under(tmp_path) == [
        tmp_path / "gsm8k/test.jsonl",
        tmp_path / "gsm8k/train.jsonl",
        tmp_path / "math500/test.jsonl",
    ]
    test_file = tmp_path / "gsm8k/test.jsonl"
    test_file.write_text('{"question": "kept?", "answer": "#### 1"}\n')
    capsys.readouterr()
    hub.calls.clear()

    assert cli.main(args) == 0
    assert hub.calls == []  # nothing downloaded
    assert capsys.readouterr().out.splitlines()[1] == (
        f"kept {test_file} (exists; --force rewrites it)"
    )
    assert read(test_file)[0]["question"] == "kept?"

    assert cli.main([*args, "--force"]) == 0
    assert len(hub.calls) == 3
    assert read(test_file) == TABLES["openai/gsm8k", "main", "test"]


@pytest.mark.parametrize(
    "variable, error, says",
    [
        (
            None,
            ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)"),
            "the Hugging Face Hub or GitHub is unreachable; offline?",
        ),
        (
            "HF_HUB_OFFLINE",
            ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (OfflineModeIsEnabled)"),
            "HF_HUB_OFFLINE is set and no cached copy was found",
        ),
        (
            "HF_DATASETS_OFFLINE",
            FileNotFoundError("openai/gsm8k is not in the cache"),
            "HF_DATASETS_OFFLINE is set",
        ),
    ],
)
def test_no_hub_is_one_line_and_status_2(hub, tmp_path, capsys, monkeypatch, variable, error, says):
    if variable:
        monkeypatch.setenv(variable, "1")
    hub.errors[None] = error
    assert cli.main(["--out", str(tmp_path)]) == 2
    line = error_line(capsys)
    assert line.startswith("error: cannot get gsm8k (openai/gsm8k:main:train): ")
    assert says in line and type(error).__name__ in line
    assert files_under(tmp_path) == []


def test_connection_errors_of_other_http_clients_count_as_offline(hub, tmp_path, capsys):
    class ConnectError(Exception):  # httpx's has no builtin base
        pass

    try:
        try:
            raise ConnectError("[Errno -2] Name or service not known")
        except ConnectError as cause:
            raise RuntimeError("download failed") from cause
    except RuntimeError as err:
        hub.errors[None] = err
    assert cli.main(["--out", str(tmp_path), "--only", "math500"]) == 2
    line = error_line(capsys)
    assert "cannot get math500 (HuggingFaceH4/MATH-500:test)" in line
    assert "unreachable; offline? (RuntimeError: download failed)" in line


def test_an_unreachable_github_file_is_reported_as_such(hub, tmp_path, capsys):
    # datasets reports a URL it cannot reach as a file it cannot find.
    url = D1_FILES + "countdown_cd3_test.jsonl"
    hub.errors[url] = FileNotFoundError(f"Unable to find '{url}'")
    assert cli.main(["--out", str(tmp_path), "--only", "countdown"]) == 2
    line = error_line(capsys)
    assert f"cannot get countdown ({url}): not found, so GitHub is likely unreachable" in line
    assert files_under(tmp_path) == [tmp_path / "countdown/train.jsonl"]


def test_without_datasets_installed_is_one_line_and_status_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import raises ImportError
    assert cli.main(["--out", str(tmp_path), "--only", "sudoku"]) == 2
    line = error_line(capsys)
    assert "cannot get sudoku" in line and "the `datasets` package is not installed" in line


def test_the_command_line_entry_point_exits_2_without_datasets(tmp_path):
    fake = tmp_path / "site" / "datasets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('stand-in: not installed')\n")
    path = [str(fake.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    result = subprocess.run(
        [sys.executable, "-m", "experiments.data", "--out", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: cannot get gsm8k (openai/gsm8k:main:train): the `datasets` package is not "
        "installed (pip install datasets)"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "source, index, bad, only, says",
    [
        (
            ("Jiayi-Pan/Countdown-Tasks-3to4", None, "train"),
            1,
            {"target": 64, "nums": "63,95,96"},
            "countdown",
            "countdown train (Jiayi-Pan/Countdown-Tasks-3to4:train) row 1: key 'nums' must be "
            "a list of integers, got '63,95,96'",
        ),
        (
            ("openai/gsm8k", "main", "train"),
            0,
            {"question": "How many?"},
            "gsm8k",
            "gsm8k train (openai/gsm8k:main:train) row 0: key 'answer' is missing",
        ),
        (
            D1_FILES + "4x4_test_sudoku.csv",
            1,
            {"Puzzle": "31022000", "Solution": "3142243142131324"},
            "sudoku",
            f"sudoku test ({D1_FILES}4x4_test_sudoku.csv) row 1: key 'Puzzle' must be 16 "
            "digits 0-4 as text, got '31022000'",
        ),
        (
            ("google-research-datasets/mbpp", "full", "validation"),
            0,
            {**mbpp_row(511), "test_list": "assert f() == 1"},
            "mbpp",
            "mbpp validation (google-research-datasets/mbpp:full:validation) row 0: key "
            "'test_list' must be a list of strings",
        ),
    ],
)
def test_a_malformed_row_is_one_line_naming_dataset_split_row_and_key(
    hub, tmp_path, capsys, source, index, bad, only, says
):
    hub.tables[source][index] = bad
    assert cli.main(["--out", str(tmp_path), "--only", only]) == 1
    assert error_line(capsys).startswith(f"error: {says}")
    split = source[2] if isinstance(source, tuple) else "test"
    assert not (tmp_path / only / f"{split}.jsonl").exists()
    assert not [p for p in files_under(tmp_path) if p.suffix == ".tmp"]


def test_an_empty_source_is_not_written(hub, tmp_path, capsys):
    hub.tables["HuggingFaceH4/MATH-500", None, "test"] = []
    assert cli.main(["--out", str(tmp_path), "--only", "math500"]) == 1
    line = error_line(capsys)
    assert line == "error: math500 test (HuggingFaceH4/MATH-500:test): the source has no rows"
    assert files_under(tmp_path) == []


def test_an_interrupted_write_leaves_the_old_file_or_nothing(tmp_path):
    def rows_then_interrupt():
        yield {"a": 1}
        raise KeyboardInterrupt

    path = tmp_path / "x" / "new.jsonl"
    with pytest.raises(KeyboardInterrupt):
        write_jsonl(path, rows_then_interrupt())
    assert files_under(tmp_path) == []

    path.write_text('{"old": true}\n')
    with pytest.raises(KeyboardInterrupt):
        write_jsonl(path, rows_then_interrupt())
    assert files_under(tmp_path) == [path] and read(path) == [{"old": True}]

    assert write_jsonl(path, [{"text": "Janet’s"}, {"n": [1, 2]}]) == 2
    assert path.read_text(encoding="utf-8") == '{"text": "Janet’s"}\n{"n": [1, 2]}\n'


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets not present")
def test_the_schemas_are_those_of_the_shared_files():
    for spec in SPLITS:
        with open(SHARED / spec.relpath, encoding="utf-8") as f:
            assert list(json.loads(f.readline())) == SCHEMAS[spec.dataset], spec.relpath
