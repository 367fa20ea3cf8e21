"""The study's pipeline on a CPU with a tiny model: data, warm start, one run, the probe, and
the scheduler's order, resumption and deadline."""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from bgpo_lightning.policy.bpe_tokenizer import train_bpe_tokenizer
from bgpo_lightning.tasks.registry import get_task
from experiments.paper_claims import plan, prepare, probe, resume, run_one, schedule, warm_start
from experiments.paper_claims.warm_start import warm_start_dir, weights_sha256

# On the CPU wherever the tests run: a GPU would measure memory and change the probe's path.
TINY_SFT = [
    "--trainer.accelerator", "cpu",
    "--model.init_args.policy.tiny",
    "{hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}",
    "--trainer.max_steps", "2", "--trainer.val_check_interval", "1",
    "--data.num_val", "4", "--data.num_test", "4", "--data.batch_size", "4",
    "--data.val_batch_size", "4",
]  # fmt: skip
TINY_RL = [
    "--trainer.accelerator", "cpu",
    "--trainer.limit_train_batches", "2", "--data.num_val", "3", "--data.num_test", "5",
    "--data.batch_size", "2", "--data.val_batch_size", "4",
    "--model.init_args.group_size", "2", "--model.init_args.micro_batch_size", "4",
]  # fmt: skip


def _rows(task: str, n: int, seed: int) -> list[dict]:
    examples = get_task(task).generate(n, seed=seed)
    if task == "sudoku":
        return [{"puzzle": e.meta["puzzle"], "solution": e.meta["solution"]} for e in examples]
    return [{"numbers": list(e.meta["numbers"]), "target": e.meta["target"]} for e in examples]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Generated stand-ins for d1's files, split and tokenized as the study does."""
    datasets = tmp_path_factory.mktemp("datasets")
    out = tmp_path_factory.mktemp("study")
    for task in plan.TASKS:
        (datasets / task).mkdir()
        for split, n, seed in (("train", 40, 0), ("test", 6, 1)):
            text = "".join(json.dumps(r) + "\n" for r in _rows(task, n, seed))
            (datasets / task / f"{split}.jsonl").write_text(text)
    prepare.split_files(datasets, out, num_val=8)
    tokenizer = train_bpe_tokenizer(prepare.tokenizer_texts(out, per_task=40), 300)
    tokenizer.save_pretrained(prepare.tokenizer_dir(out))
    warm_start.train_warm_start("sudoku", out, TINY_SFT)
    return out


def test_split_keeps_the_last_rows_for_validation(root):
    train = (root / "data" / "sudoku" / "train.jsonl").read_text().splitlines()
    val = (root / "data" / "sudoku" / "val.jsonl").read_text().splitlines()
    assert (len(train), len(val)) == (32, 8)
    assert not set(train) & set(val)


def test_warm_start_is_stored_in_bfloat16_and_summarised(root):
    summary = json.loads((root / "sudoku" / "warmstart.json").read_text())
    assert summary["sft_steps"] == 2 and summary["params"] > 0
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    config = json.loads((warm_start.warm_start_dir(root, "sudoku") / "config.json").read_text())
    assert config["dtype"] == "bfloat16"


def test_a_warm_start_cut_by_its_budget_continues_from_its_weights(root, tmp_path):
    shutil.copytree(root / "data", tmp_path / "data")
    # Countdown: a tiny model after 3 steps is far below the 10% threshold.
    three_steps = [*TINY_SFT, "--trainer.max_steps", "3"]
    first = warm_start.train_warm_start("countdown", tmp_path, three_steps, budget_s=0)
    assert not (tmp_path / "countdown" / "warmstart.json").exists()
    progress = json.loads(warm_start.progress_file(tmp_path, "countdown").read_text())
    assert progress == first and progress["sft_steps"] < 3
    assert progress["weights_sha256"] == weights_sha256(warm_start_dir(tmp_path, "countdown"))
    done = warm_start.train_warm_start("countdown", tmp_path, three_steps)
    assert done["sft_steps"] == 3 and done["stopped"] == "max_steps"
    assert [p["steps"] for p in done["parts"]] == [first["sft_steps"], 3 - first["sft_steps"]]
    assert 0.0 <= done["test_accuracy"] <= 1.0
    assert not warm_start.progress_file(tmp_path, "countdown").exists()


def test_one_run_records_its_curve_costs_and_command(root):
    key = plan.RunKey("sudoku", "bgpo_nt4", 1e-4, 0)
    result = run_one.train(root, key, eval_every=1, overrides=TINY_RL)
    assert result["status"] == "ok"
    assert [p["batch"] for p in result["curve"]] == [0, 1, 2]
    assert all(0.0 <= p[s] <= 1.0 for p in result["curve"] for s in ("val", "test"))
    assert len(result["train_reward"]) == 2 and result["rollout_batches"] == 2
    assert result["settings"]["num_mc_samples"] == 4
    assert result["machine"]["device"] == "CPU" and result["machine"]["concurrent_runs"] == 1
    assert result["step_s"] == pytest.approx(result["rollout_s"] + result["likelihood_s"])
    summary = json.loads((root / "sudoku" / "warmstart.json").read_text())
    assert result["warm_start_sha256"] == summary["weights_sha256"]
    written = json.loads((run_one.run_dir(root, key) / "result.json").read_text())
    assert written["command"].endswith("--method bgpo_nt4 --lr 0.0001 --seed 0")


def test_a_failing_run_writes_its_error_in_one_line(root):
    key = plan.RunKey("sudoku", "bgpo_nt1", 1e-4, 7)
    bad = [*TINY_RL, "--model.init_args.num_mc_samples", "0"]
    result = run_one.train(root, key, overrides=bad)
    assert result["status"].startswith("error: ") and "\n" not in result["status"]
    assert "num_mc_samples" in result["status"]


def test_unknown_method_is_a_one_line_error():
    with pytest.raises(SystemExit, match="unknown method 'bgpo_nt3'"):
        run_one.main(["--task", "sudoku", "--method", "bgpo_nt3", "--lr", "1e-4", "--seed", "0"])


def test_probe_picks_the_largest_fitting_n_t():
    assert probe.choose_n_t(3.0, {1: 2.9, 2: 3.05, 4: 5.0}) == 2
    assert probe.choose_n_t(3.0, {1: 3.5}) == 1
    assert probe.choose_n_t(None, {1: None}) == 1


def test_vrpo_ol_needs_the_probe_first(root):
    key = plan.RunKey("countdown", "vrpo_ol", 1e-4, 0)
    with pytest.raises(SystemExit, match="probe.json is missing"):
        run_one.cli_args(root, key, root / "x", [])


def _fake_jobs(monkeypatch, seconds: float = 0.0) -> None:
    """Jobs that write their own done file (a result for runs) instead of training, renamed
    into place as the real steps do: the scheduler reads results while other jobs run."""

    def argv(job, root):
        result = {"task": job.task, "status": "ok", "curve": [{"batch": 0, "val": 0.5}]}
        if job.method:
            args = dict(zip(job.args[::2], job.args[1::2], strict=False))
            lr, seed = float(args["--lr"]), int(args["--seed"])
            val = 0.5 + (lr == 1e-4) * 0.1  # the sweep picks 1e-4
            result.update(method=job.method, lr=lr, seed=seed, curve=[{"batch": 0, "val": val}])
        elif job.kind == "probe":
            result = {"vrpo_ol_n_t": 1}
        code = (
            f"import json, pathlib, sys, time; time.sleep({seconds}); "
            f"p = pathlib.Path({str(job.done_file)!r}); "
            f"p.parent.mkdir(parents=True, exist_ok=True); "
            f"q = p.with_name(p.name + '.partial'); "
            f"q.write_text(json.dumps(dict({result!r}, argv=sys.argv[1:]))); q.replace(p)"
        )
        return [sys.executable, "-c", code]

    monkeypatch.setattr(schedule.Job, "argv", argv)


def test_scheduler_runs_everything_in_order_and_then_the_seeds(tmp_path, monkeypatch):
    _fake_jobs(monkeypatch)
    first = schedule.pending_jobs(tmp_path, ["sudoku"])
    assert [j.kind for j in first] == ["warm_start"]
    outcome = schedule.Scheduler(tmp_path, ["sudoku"], 4, budget_s=600, poll_s=0.05).run()
    assert outcome == {"failed": [], "pending": []}
    # The warm start is given what is left of the budget, less the margin for its export.
    argv = json.loads((tmp_path / "sudoku" / "warmstart.json").read_text())["argv"]
    budget = float(argv[argv.index("--budget-s") + 1])
    assert 600 - schedule.WARM_START_MARGIN_S - 30 < budget <= 600 - schedule.WARM_START_MARGIN_S
    runs = list((tmp_path / "sudoku" / "runs").glob("*/result.json"))
    methods = plan.methods_for("sudoku")
    assert len(runs) == len(methods) * (len(plan.LEARNING_RATES) + len(plan.SEEDS) - 1)
    seeds = [p for p in runs if not p.parent.name.endswith(f"seed{plan.SWEEP_SEED}")]
    assert seeds and all("__lr0.0001__" in p.parent.name for p in seeds)


def test_scheduler_stops_at_its_deadline_and_resumes(tmp_path, monkeypatch):
    _fake_jobs(monkeypatch, seconds=0.5)
    (tmp_path / "sudoku").mkdir()
    (tmp_path / "sudoku" / "warmstart.json").write_text("{}")
    (tmp_path / "sudoku" / "probe.json").write_text("{}")
    start = time.monotonic()
    cut = schedule.Scheduler(tmp_path, ["sudoku"], 2, budget_s=3.0, default_s=0.2, poll_s=0.05)
    outcome = cut.run()
    assert time.monotonic() - start < 30
    assert outcome["pending"]  # cut off: work left
    done = len(list((tmp_path / "sudoku" / "runs").glob("*/result.json")))
    assert 0 < done < len(plan.sweep_runs("sudoku"))
    again = schedule.Scheduler(tmp_path, ["sudoku"], 8, budget_s=600, poll_s=0.05).run()
    assert again["pending"] == []


def test_sweep_starts_with_the_costliest_methods(tmp_path):
    (tmp_path / "sudoku").mkdir()
    (tmp_path / "sudoku" / "warmstart.json").write_text("{}")
    (tmp_path / "sudoku" / "probe.json").write_text("{}")
    methods = [j.method for j in schedule.pending_jobs(tmp_path, ["sudoku"])]
    assert methods[0] == "bgpo_nt32" and methods[-1] == "bgpo_nt1"


def test_probe_writes_its_choice(root):
    summary = probe.probe("sudoku", root, TINY_RL[:4])  # on the CPU, two batches
    written = json.loads((root / "sudoku" / "probe.json").read_text())
    assert written == summary
    # No GPU, no memory figure: the probe stops at the first candidate and keeps n_t = 1.
    assert summary["vrpo_ol_n_t"] == 1 and list(summary["vrpo_ol_peak_gib"]) == ["1"]
    (root / "sudoku" / "probe.json").unlink()


def test_a_restarted_run_starts_from_an_empty_folder(root):
    key = plan.RunKey("sudoku", "bgpo_nt1", 1e-4, 3)
    stale = run_one.run_dir(root, key) / "lightning_logs" / "version_0" / "gradient_statistics.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by a run stopped at a deadline")
    result = run_one.train(root, key, overrides=TINY_RL, evaluate=False)
    assert result["status"] == "ok" and result["grad_stats_csv"] is None
    assert not stale.exists()


class _Killed(BaseException):
    """What the scheduler's SIGKILL does to a run, in-process: no result is written."""


def test_a_run_killed_after_a_batch_resumes_from_its_checkpoint(root, tmp_path, monkeypatch):
    # A reward that the tiny policy earns, so that training moves it (d1's gives it 0).
    task_class = type(get_task("sudoku"))
    monkeypatch.setattr(task_class, "reward", lambda self, text, example: len(text) % 5 / 4)
    key = plan.RunKey("sudoku", "bgpo_nt4", 1e-4, 5)
    four = [*TINY_RL, "--trainer.limit_train_batches", "4"]
    whole = run_one.train(root, key, 2, four, with_gradient_statistics=True,
                          directory=tmp_path / "whole")  # fmt: skip
    save = resume.BatchCheckpoint.on_train_batch_end

    def save_then_die(self, trainer, module, outputs, batch, batch_idx):
        save(self, trainer, module, outputs, batch, batch_idx)
        if batch_idx == 2:
            raise _Killed

    monkeypatch.setattr(resume.BatchCheckpoint, "on_train_batch_end", save_then_die)
    monkeypatch.setenv(resume.SCRATCH_VARIABLE, str(tmp_path / "scratch"))
    part = root / "sudoku" / "resume_test" / key.name  # scratch folders mirror the root
    with pytest.raises(_Killed):
        run_one.train(root, key, 2, four, with_gradient_statistics=True, directory=part)
    assert not (part / "result.json").exists()
    monkeypatch.setattr(resume.BatchCheckpoint, "on_train_batch_end", save)
    resumed = run_one.train(root, key, 2, four, with_gradient_statistics=True, directory=part)
    assert resumed["status"] == "ok" and resumed["resumed_at"] == [3]
    assert whole["resumed_at"] == []
    # The same run: the checkpoint holds the loader's position and the random streams.
    points = [[p[k] for k in ("batch", "val", "test")] for p in resumed["curve"]]
    assert points == [pytest.approx([p[k] for k in ("batch", "val", "test")])
                      for p in whole["curve"]]  # fmt: skip
    assert resumed["train_reward"] == pytest.approx(whole["train_reward"])
    assert len(set(whole["train_reward"])) > 1  # the comparison above can fail

    def measured(folder):  # both parts' rows in order, timings left out
        rows = list(csv.DictReader((folder / "gradient_statistics.csv").open()))
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    assert {row["step"] for row in measured(part)} == {"2", "4"}
    assert measured(part) == measured(tmp_path / "whole")
    assert not resume.checkpoint_dir(resume.scratch_dir(part, root)).exists()
    assert resume.scratch_dir(part, root).is_relative_to(tmp_path / "scratch")


def test_resumable_runs_start_even_when_they_would_not_finish(tmp_path, monkeypatch):
    _fake_jobs(monkeypatch, seconds=0.1)
    (tmp_path / "sudoku").mkdir()
    (tmp_path / "sudoku" / "warmstart.json").write_text("{}")
    (tmp_path / "sudoku" / "probe.json").write_text("{}")
    slow = {"budget_s": 2.0, "default_s": 1000.0, "poll_s": 0.05}
    assert schedule.Scheduler(tmp_path, ["sudoku"], 2, **slow).run()["pending"]
    assert not (tmp_path / "sudoku" / "runs").exists()  # none expected to end in time
    monkeypatch.setattr(schedule, "RESUMABLE_MIN_S", 0.5)
    schedule.Scheduler(tmp_path, ["sudoku"], 2, resumable=True, **slow).run()
    assert list((tmp_path / "sudoku" / "runs").glob("*/result.json"))
