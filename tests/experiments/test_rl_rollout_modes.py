"""The same-seed rollout-sampler comparison: its report and its overrides."""

import dataclasses

import pytest

from bgpo_lightning.diffusion.sampler import SamplerConfig
from experiments import rl_rollout_modes as study
from experiments.sampler_modes import parse_mode


def test_report_pairs_each_mode_with_exact_over_the_same_puzzles():
    exact = {"before": [0.5, 0.5, 0.5, 0.5], "after": [1.0, 0.5, 1.0, 0.5], "seconds": 100.0}
    dual = {"before": [0.5, 0.5, 0.5, 0.5], "after": [1.0, 0.5, 0.5, 0.5], "seconds": 80.0}
    text = study.report({"exact": [exact], "dual": [dual]}, seed=3, seconds=181.0, extra=[])
    assert "--seed 3`" in text and "paired standard error over the puzzles" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert rows["| exact"].endswith("| +0.0 ± 0.0 | +0.0 | 100 |")
    # dual's after minus exact's after: (0, 0, -0.5, 0) -> mean -12.5 points, SE 12.5
    assert "| +12.5 ± 12.5 | -12.5 ± 12.5 | -12.5 | 80 |" in rows["| dual"]


def test_report_over_rl_seeds_gives_the_standard_error_across_seeds():
    before = [0.5, 0.5]

    def run(after, seconds=10.0):
        return {"before": before, "after": after, "seconds": seconds}

    exact = [run([0.6, 0.6]), run([0.7, 0.7]), run([0.8, 0.8])]
    fast = [run([0.6, 0.6]), run([0.5, 0.5]), run([0.7, 0.7], 40.0)]
    text = study.report({"exact": exact, "fast": fast}, seed=0, seconds=1.0, extra=[])
    assert "Means over 3 RL seeds" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    # gains +10, +20, +30 -> +20 ± 10/sqrt(3); fast - exact per seed: 0, -20, -10 -> -10 ± 5.8
    assert "| exact | 3 | 2 | 50.0 | 70.0 | +20.0 ± 5.8 | +0.0 ± 0.0 |" in rows["| exact"]
    assert "| -10.0 ± 5.8 | +0.0, -20.0, -10.0 | 20 |" in rows["| fast"]
    with pytest.raises(ValueError, match="has 2 RL seeds, exact has 3"):
        study.report({"exact": exact, "fast": fast[:2]}, seed=0, seconds=1.0, extra=[])


def test_runs_of_other_rl_seeds_live_apart_and_reseed_only_the_rl_run(tmp_path):
    assert study.run_root(tmp_path, "dual", 0, 0) == tmp_path / "dual"
    assert study.run_root(tmp_path, "dual", 2, 0) == tmp_path / "dual" / "rl_seed_2"
    assert study.rl_seed_overrides(0, 0) == []
    assert study.rl_seed_overrides(2, 0) == ["seed_everything=2", "model.init_args.seed=2"]


@pytest.mark.parametrize(
    "name", ["exact", "dual", "dual+threshold0.9", "threshold0.95", "prefix+refresh2", "f32"]
)
def test_mode_overrides_set_the_sampler_the_mode_names(name):
    base = SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=1.0)
    settings = {}
    for override in study.rollout_overrides(name):
        key, value = override.split("=")
        assert key.startswith("model.init_args.rollout.")
        field = key.rsplit(".", 1)[1]
        kind = {"threshold": float, "cache_refresh_steps": int}.get(field, str)
        settings[field] = kind(value)
    assert dataclasses.replace(base, **settings) == parse_mode(name).config(base)


def test_graph_and_malformed_modes_are_refused():
    with pytest.raises(ValueError, match="graph needs CUDA"):
        study.rollout_overrides("dual+graph")
    with pytest.raises(ValueError, match="unknown part"):
        study.rollout_overrides("dual+fast")
    with pytest.raises(SystemExit):
        study.main(["--modes", "exact", "dual+graph"])
