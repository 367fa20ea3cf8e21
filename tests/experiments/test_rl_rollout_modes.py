"""The same-seed rollout-sampler comparison: its report and its overrides."""

import pytest

from bgpo_lightning.diffusion.sampler import SamplerConfig
from experiments import rl_rollout_modes as study


def test_report_pairs_each_mode_with_exact_over_the_same_puzzles():
    exact = {"before": [0.5, 0.5, 0.5, 0.5], "after": [1.0, 0.5, 1.0, 0.5], "seconds": 100.0}
    dual = {"before": [0.5, 0.5, 0.5, 0.5], "after": [1.0, 0.5, 0.5, 0.5], "seconds": 80.0}
    text = study.report({"exact": exact, "dual": dual}, seed=3, seconds=181.0, extra=[])
    assert "--seed 3`" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert rows["| exact"].endswith("| +0.0 ± 0.0 | 100 |")
    # dual's after minus exact's after: (0, 0, -0.5, 0) -> mean -12.5 points, SE 12.5
    assert "| +12.5 ± 12.5 | -12.5 ± 12.5 | 80 |" in rows["| dual"]


@pytest.mark.parametrize("mode", list(study.MODES))
def test_mode_overrides_name_valid_sampler_settings(mode):
    settings = {}
    for override in study.MODES[mode]:
        key, value = override.split("=")
        assert key.startswith("model.init_args.rollout.")
        settings[key.rsplit(".", 1)[1]] = float(value) if key.endswith("threshold") else value
    config = SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=1.0, **settings)
    assert config.cache == ("none" if mode == "exact" else "dual")
