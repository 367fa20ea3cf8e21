"""The sampler accuracy check at toy size: a random tiny model, 8 prompts, 2 modes."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bgpo_lightning.policy import build_char_tokenizer
from bgpo_lightning.tasks.datamodule import PromptDataModule
from bgpo_lightning.tasks.registry import get_task
from experiments.estimator_study.batch import build_module
from experiments.sampler_accuracy import (
    MODES,
    chosen_setup,
    count_forwards,
    has_duplicate,
    load_splits,
    main,
    mode_sampler,
    parse_mode,
    parser,
    run_check,
)
from experiments.sampler_accuracy_report import render_doc
from experiments.sampler_accuracy_setups import (
    EMBEDDED_DEFAULT,
    SETUPS,
    SHAPE,
    STUDY_COUNTDOWN,
    STUDY_SUDOKU,
    TASK_KWARGS,
)
from experiments.sampler_modes import RolloutMode
from tests.helpers import TINY, tiny_policy

PROMPTS, GROUP = 8, 2
TWO_MODES = (
    RolloutMode("exact"),
    RolloutMode("prefix-refresh1", cache="prefix", refresh_steps=1),
)


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def rows():
    """The check on a random float64 tiny model over 8 generated compact-format puzzles."""
    data = PromptDataModule(
        task="sudoku", task_kwargs=dict(TASK_KWARGS), num_train=8, num_val=0, num_test=PROMPTS
    )
    module = build_module(None, PROMPTS * GROUP, GROUP, tiny=TINY).double()
    splits = {"toy": data.examples("test")}
    return run_check(module, data.task, splits, TWO_MODES, GROUP, seed=0, prompts_per_batch=4)


def test_one_row_per_mode_with_exact_as_reference(rows):
    assert [(r.split, r.mode) for r in rows] == [("toy", "exact"), ("toy", "prefix-refresh1")]
    exact, prefix = rows
    assert exact.n == prefix.n == PROMPTS
    assert exact.accuracy_diff == exact.reward_diff == 0.0
    assert exact.forward_ratio == exact.token_ratio == exact.time_ratio == 1.0
    for r in rows:
        assert 0.0 <= r.accuracy <= 1.0 and 0.0 <= r.reward <= 1.0
        assert 0.0 <= r.duplicate_fraction <= 1.0
        assert r.forwards > 0 and r.seconds > 0


def test_prefix_cache_refreshed_every_step_matches_exact(rows):
    exact, prefix = rows
    assert prefix.accuracy == exact.accuracy
    assert prefix.accuracy_diff == 0.0 and prefix.accuracy_diff_se == 0.0
    assert prefix.holds


def test_counters():
    layer = torch.nn.Linear(3, 2)
    with count_forwards(layer) as counter:
        layer(torch.zeros(4, 3))
        layer(torch.zeros(5, 3))
    assert counter == [2, 27]
    assert has_duplicate(torch.tensor([[1, 2], [3, 4], [1, 2]]))
    assert not has_duplicate(torch.tensor([[1, 2], [2, 1]]))


# ---- modes ----------------------------------------------------------------------------------


def test_mode_names_spell_out_their_sampler_settings():
    assert parse_mode("exact") == RolloutMode("exact")
    assert parse_mode("dual+refresh4") == RolloutMode(
        "dual+refresh4", cache="dual", refresh_steps=4
    )
    assert parse_mode("prefix+threshold0.95") == RolloutMode(
        "prefix+threshold0.95", cache="prefix", threshold=0.95
    )
    assert [m.name for m in MODES] == ["exact", "prefix", "dual", "threshold0.9",
                                       "dual+threshold0.9"]  # fmt: skip
    assert MODES[4] == RolloutMode("dual+threshold0.9", cache="dual", threshold=0.9)
    sampler = mode_sampler(parse_mode("dual+refresh4"),
                           {"gen_length": 8, "block_length": 8, "steps": 8}, 1.0)  # fmt: skip
    assert (sampler.cache, sampler.cache_refresh_steps) == ("dual", 4)
    assert mode_sampler(parse_mode("dual+f32"), SHAPE, 1.0).precision == "float32"
    for bad, why in (("refresh4", "needs prefix or dual"), ("dual+prefix", "twice"),
                     ("dual+fast", "unknown part"), ("thresholdx", "unknown part"),
                     ("dual+graph", "gives the tokens of dual")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_mode(bad)


def test_an_unknown_mode_option_is_a_one_line_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["--modes", "dual+fast"])
    assert "unknown part 'fast' of mode 'dual+fast'" in capsys.readouterr().err


# ---- setups ---------------------------------------------------------------------------------


def test_setup_option_selects_the_setup_and_defaults_to_the_embedded_one():
    assert set(SETUPS) == {"embedded-default", "study-sudoku", "study-countdown"}
    assert chosen_setup(parser().parse_args([])) == (EMBEDDED_DEFAULT, [])
    assert chosen_setup(parser().parse_args(["--setup", "study-sudoku"])) == (STUDY_SUDOKU, [])
    with pytest.raises(SystemExit):
        parser().parse_args(["--setup", "nope"])


def test_options_override_the_setup_and_say_so(tmp_path):
    args = parser().parse_args(
        ["--setup", "study-sudoku", "--temperature", "1.0", "--warm-start", str(tmp_path)]
        + ["--doc", str(tmp_path / "d.md"), "--csv-dir", str(tmp_path / "c")]
    )
    setup, notes = chosen_setup(args)
    assert setup.temperature == 1.0 and setup.warm_start == tmp_path
    assert setup.tokenizer is None  # another warm start brings its own tokenizer
    assert setup.doc == tmp_path / "d.md" and setup.csv_dir == tmp_path / "c"
    assert setup.shape == STUDY_SUDOKU.shape and setup.dtype == "float32"
    assert len(notes) == 2 and "temperature overridden: 1.0" in notes[1]


def test_mode_sampler_uses_the_given_shape():
    shape = {"gen_length": 32, "block_length": 16, "steps": 16}
    sampler = mode_sampler(RolloutMode("dual+t", cache="dual", threshold=0.9), shape, 0.9)
    assert (sampler.gen_length, sampler.block_length, sampler.steps) == (32, 16, 16)
    assert (sampler.temperature, sampler.cache, sampler.threshold) == (0.9, "dual", 0.9)
    exact = mode_sampler(RolloutMode("exact"), SHAPE, 0.0)
    assert (exact.gen_length, exact.block_length, exact.steps) == (16, 8, 8)
    assert (exact.temperature, exact.cache, exact.threshold) == (0.0, "none", None)


def test_study_splits_are_the_d1_test_file_only(tmp_path):
    path = write_d1_rows(tmp_path / "test.jsonl", 5)
    setup = replace(STUDY_SUDOKU, d1_test=path)
    splits, task, notes = load_splits(3, 0, True, setup)
    assert list(splits) == ["d1 test"] and len(splits["d1 test"]) == 3
    assert splits["d1 test"][0].prompt == get_task("sudoku").load(str(path))[0].prompt
    assert task.reward_mode == "d1"
    assert len(notes) == 1
    assert notes[0].startswith(f"`d1 test`: the first 3 rows of `{path}`, the small-scale study's")
    with pytest.raises(FileNotFoundError):
        load_splits(3, 0, True, replace(setup, d1_test=tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="no split"):
        load_splits(3, 0, False, setup)


def test_the_countdown_setup_loads_countdown_problems_and_names_them(tmp_path, rows):
    path = tmp_path / "test.jsonl"
    problems = [{"numbers": [44, 19, 35], "target": 98}, {"numbers": [3, 5, 2], "target": 13}]
    path.write_text("".join(json.dumps(r) + "\n" for r in problems))
    setup = replace(STUDY_COUNTDOWN, d1_test=path)
    splits, task, notes = load_splits(5, 0, True, setup)
    assert task.name == "countdown" and task.reward_mode == "d1"
    assert [e.meta["target"] for e in splits["d1 test"]] == [98, 13]
    assert "[44, 19, 35]" in splits["d1 test"][0].prompt
    doc = render_doc(rows, "cmd", notes, GROUP, 0, 1.0, setup)
    assert "responses per problem (seed 0)" in doc and "puzzle" not in doc
    assert "percent of the problems solved" in doc
    assert "countdown_rl.yaml" in doc and str(setup.csv_dir / "results.csv") in doc


# ---- the study setup end to end on a tiny model ----------------------------------------------


def write_d1_rows(path: Path, n: int) -> Path:
    """``n`` generated puzzles as rows of d1's test file."""
    task = get_task("sudoku")
    rows = [e.meta for e in task.generate(n, seed=1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tiny_warm_start(tmp_path_factory) -> Path:
    """A tiny random policy saved as a bfloat16 Hugging Face checkpoint with its tokenizer,
    as the study exports its warm start."""
    directory = tmp_path_factory.mktemp("tiny_warmstart")
    tiny_policy(torch.float32, seed=5).model.to(torch.bfloat16).save_pretrained(directory)
    build_char_tokenizer().save_pretrained(directory)
    return directory


def test_study_module_loads_the_bfloat16_weights_as_float32(tiny_warm_start):
    setup = replace(STUDY_SUDOKU, warm_start=tiny_warm_start, tokenizer=None)
    module = build_module(setup.warm_start, 8, 2, tokenizer_path=setup.tokenizer, dtype=setup.dtype)
    assert {p.dtype for p in module.parameters()} == {torch.float32}
    as_saved = replace(setup, dtype=None)
    kept = build_module(
        as_saved.warm_start, 8, 2, tokenizer_path=as_saved.tokenizer, dtype=as_saved.dtype
    )
    assert {p.dtype for p in kept.parameters()} == {torch.bfloat16}
    for a, b in zip(module.parameters(), kept.parameters(), strict=True):
        assert torch.equal(a, b.float())


def test_study_check_runs_at_the_study_shape(tiny_warm_start, tmp_path):
    setup = replace(STUDY_SUDOKU, warm_start=tiny_warm_start, tokenizer=None)
    splits, task, _ = load_splits(
        4, 0, True, replace(setup, d1_test=write_d1_rows(tmp_path / "t.jsonl", 4))
    )
    module = build_module(
        setup.warm_start, 4 * GROUP, GROUP, tokenizer_path=setup.tokenizer, dtype=setup.dtype
    ).double()
    rows = run_check(
        module,
        task,
        splits,
        TWO_MODES,
        GROUP,
        seed=0,
        shape=setup.shape,
        temperature=setup.temperature,
    )
    exact, prefix = rows
    assert exact.n == prefix.n == 4
    # One greedy and one rollout batch, 16 steps each: the study's shape, not the default's 8.
    assert exact.forwards == prefix.forwards == 2 * 16
    assert prefix.accuracy == exact.accuracy  # a prefix cache refreshed every step is exact


def test_main_writes_the_study_report(tiny_warm_start, tmp_path):
    test_file = write_d1_rows(tmp_path / "test.jsonl", 3)
    doc, csv_dir = tmp_path / "study.md", tmp_path / "study"
    argv = ["--setup", "study-sudoku", "--warm-start", str(tiny_warm_start)]
    argv += ["--d1-test", str(test_file), "--num-test", "3", "--group-size", "2"]
    argv += ["--threads", "1", "--doc", str(doc), "--csv-dir", str(csv_dir)]
    assert main(argv) == 0
    with (csv_dir / "results.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [(r["split"], r["mode"], r["n"]) for r in table] == [
        ("d1 test", m.name, "3") for m in MODES
    ]
    text = doc.read_text()
    assert "--setup study-sudoku" in text
    assert "gen_length 32, block_length 16, steps 16" in text and "temperature 0.9" in text
    assert f"the first 3 rows of `{test_file}`" in text
    assert f"Warm start overridden: `{tiny_warm_start}`" in text
    assert f"`{csv_dir / 'results.csv'}`" in text


def test_main_explains_a_missing_study_warm_start_or_test_file(tiny_warm_start, tmp_path, capsys):
    missing = ["--setup", "study-sudoku", "--warm-start", str(tmp_path / "none")]
    assert main(missing) == 2
    assert "python -m experiments.paper_claims.warm_start --task sudoku" in capsys.readouterr().err
    no_test = ["--setup", "study-sudoku", "--warm-start", str(tiny_warm_start)]
    no_test += ["--d1-test", str(tmp_path / "none.jsonl"), "--doc", str(tmp_path / "d.md")]
    assert main(no_test) == 2
    assert "no test split" in capsys.readouterr().err
    assert not (tmp_path / "d.md").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
@pytest.mark.parametrize(
    ("device", "message"),
    [("cuda", "CUDA is not available"), ("meta", "expected cpu or cuda"), ("gpu0", "--device")],
)
def test_an_unusable_device_is_a_one_line_error_before_any_work(device, message, tmp_path, capsys):
    doc = tmp_path / "d.md"
    with pytest.raises(SystemExit):
        main(["--setup", "study-sudoku", "--device", device, "--doc", str(doc)])
    assert message in capsys.readouterr().err
    assert not doc.exists()
