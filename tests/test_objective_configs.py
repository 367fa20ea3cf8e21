"""Every objective through the CLI: its config composes with every task config, and a 2-step
fit on the CPU selects it by name; bad names and settings are one-line errors."""

from pathlib import Path

import pytest
import yaml

from bgpo_lightning import cli
from bgpo_lightning.objectives import OBJECTIVES
from tests.test_cli import QUIET, SMALL_DATA, TINY_MODEL, in_tmp, one_error_line

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
OVERLAYS = {path.stem: path for path in sorted((CONFIGS / "objectives").glob("*.yaml"))}
TASKS = ["sudoku_bgpo", "countdown_bgpo", "sudoku_bgpo_llada", "countdown_bgpo_llada"]
#: The BGPO paper's n_t per method (DESIGN.md section 2); BGPO's lives in the task configs.
PAPER_N_T = {"sudoku_bgpo_llada": 32, "countdown_bgpo_llada": 16}


def test_every_registered_objective_has_a_config():
    assert set(OVERLAYS) == set(OBJECTIVES)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_config_composes_with_each_task_config(task, name, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(
            ["fit", "--config", str(CONFIGS / f"{task}.yaml"), "--config", str(OVERLAYS[name]),
             "--print_config"]
        )  # fmt: skip
    assert info.value.code == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert model["objective"] == name
    if task in PAPER_N_T:
        expected = {"bgpo": PAPER_N_T[task], "vrpo_ol": 4, "gdpo": 3}
        if name in expected:
            assert model["num_mc_samples"] == expected[name]


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_two_step_fit_selects_the_objective_by_name(tmp_path, name):
    code = cli.main(
        ["fit", "--config", str(CONFIGS / "sudoku_bgpo.yaml"), "--config", str(OVERLAYS[name]),
         "--model.init_args.objective", name,
         "--model.init_args.group_size", "2",
         "--trainer.max_steps", "2",
         "--trainer.limit_val_batches", "0",
         "--trainer.enable_checkpointing", "false",
         "--trainer.callbacks", "[]",
         *TINY_MODEL, *SMALL_DATA, *QUIET, *in_tmp(tmp_path)]
    )  # fmt: skip
    assert code == 0
    config = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())
    assert config["model"]["init_args"]["objective"] == name
    assert list(tmp_path.rglob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--model.init_args.objective_settings", "{clip: 0.2}"], "no setting 'clip'"),
        (["--model.init_args.estimator", "antithetic"], "unknown estimator 'antithetic'"),
        (
            ["--model.init_args.estimator_settings", "{rule: gauss_legendre, nodes: 9}"],
            "nodes",
        ),
        (["--model.init_args.num_mc_samples", "4"], "multiple"),
    ],
)
def test_bad_objective_settings_are_one_line(tmp_path, capsys, extra, expected):
    code = cli.main(
        ["fit", "--config", str(CONFIGS / "sudoku_bgpo.yaml"), "--config", str(OVERLAYS["gdpo"]),
         *TINY_MODEL, *SMALL_DATA, *QUIET, *in_tmp(tmp_path), *extra]
    )  # fmt: skip
    assert code == 2
    assert expected in one_error_line(capsys)
