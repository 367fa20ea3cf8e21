"""The Lightning CLI in-process: help, printed config, one-line input errors, fit + validate."""

import json
from pathlib import Path

import pytest

from bgpo_lightning import cli
from experiments import run

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
BGPO = str(CONFIGS / "sudoku_bgpo.yaml")

TINY_MODEL = [
    "--model.init_args.policy.tiny.num_layers", "1",
    "--model.init_args.policy.tiny.hidden_size", "16",
    "--model.init_args.policy.tiny.num_heads", "2",
    "--model.init_args.policy.tiny.intermediate_size", "32",
]  # fmt: skip
SMALL_DATA = [
    "--data.num_train", "8",
    "--data.num_val", "4",
    "--data.num_test", "4",
    "--data.batch_size", "2",
    "--data.val_batch_size", "4",
]  # fmt: skip
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def in_tmp(tmp_path):
    """Keeps every file a run writes (logs, config, checkpoints) under ``tmp_path``."""
    return [
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger.init_args.save_dir", str(tmp_path),
    ]  # fmt: skip


def small_fit(tmp_path, *extra):
    return ["fit", "--config", BGPO, *TINY_MODEL, *SMALL_DATA, *QUIET, *in_tmp(tmp_path), *extra]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def test_help_exits_zero_and_lists_fit(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "fit" in out and "validate" in out
    with pytest.raises(SystemExit) as info:
        run.main(["fit", "--help"])
    assert info.value.code == 0
    assert "--model" in capsys.readouterr().out


def test_print_config_shows_the_objective(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["fit", "--config", BGPO, "--print_config"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "objective: bgpo" in out
    assert "class_path: bgpo_lightning.modules.DiffusionRLModule" in out
    assert "task: sudoku" in out


def test_unknown_objective_is_one_line(tmp_path, capsys):
    code = cli.main(small_fit(tmp_path, "--model.init_args.objective", "ppo"))
    assert code == 2
    line = one_error_line(capsys)
    assert "'ppo'" in line and "bgpo" in line


def test_unknown_task_is_one_line(tmp_path, capsys):
    code = run.main(small_fit(tmp_path, "--data.task", "chess"))
    assert code == 2
    line = one_error_line(capsys)
    assert "'chess'" in line and "sudoku" in line


def test_missing_data_file_is_one_line_naming_it(tmp_path, capsys):
    code = cli.main(small_fit(tmp_path, "--data.train_path", "/nonexistent/x.jsonl"))
    assert code == 2
    assert "/nonexistent/x.jsonl" in one_error_line(capsys)


def test_malformed_data_file_is_one_line_naming_file_and_line(tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    good = {"puzzle": "1034341221434301", "solution": "1234341221434321"}
    data.write_text(json.dumps(good) + "\n" + '{"puzzle": "1234", oops\n')
    code = cli.main(small_fit(tmp_path, "--data.train_path", str(data)))
    assert code == 2
    line = one_error_line(capsys)
    assert str(data) in line and "line 2" in line and "invalid JSON" in line


def test_a_bug_is_not_reported_as_an_input_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug, not a bad input")

    monkeypatch.setattr(cli, "build_cli", broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(small_fit(tmp_path))


def test_tiny_fit_then_validate_from_the_last_checkpoint(tmp_path, capsys):
    code = cli.main(
        small_fit(
            tmp_path,
            "--model.init_args.group_size", "2",
            "--model.init_args.num_mc_samples", "1",
            "--trainer.max_steps", "2",
            "--trainer.val_check_interval", "2",
            "--trainer.limit_val_batches", "1",
        )
    )  # fmt: skip
    assert code == 0
    version = tmp_path / "sudoku_bgpo" / "version_0"
    events = list(version.glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert (version / "config.yaml").is_file()
    hf = version / "hf_checkpoint"
    assert (hf / "config.json").is_file() and (hf / "model.safetensors").is_file()
    assert json.loads((hf / "config.json").read_text())["num_hidden_layers"] == 1
    assert (hf / "tokenizer.json").is_file()
    last = version / "checkpoints" / "last.ckpt"
    assert last.is_file()
    capsys.readouterr()

    # The model's shape comes from the checkpoint's hyperparameters, not the config's
    # 4-layer default: the weights would not load into the wrong shape.
    code = cli.main(
        ["validate", "--config", BGPO, *SMALL_DATA, *QUIET, *in_tmp(tmp_path),
         "--ckpt_path", str(last)]
    )  # fmt: skip
    assert code == 0
    assert "val/accuracy" in capsys.readouterr().out
    assert list((tmp_path / "sudoku_bgpo" / "version_1").glob("events.out.tfevents.*"))
