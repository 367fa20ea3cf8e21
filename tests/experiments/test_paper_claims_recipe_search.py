"""The warm-start recipe search: its variants, its history across parts, and its merge."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from bgpo_lightning.policy.model import TinyModelConfig
from experiments.paper_claims import recipe_search
from experiments.paper_claims.recipe_search import VARIANTS


def _progress(root: Path, parts: list[tuple[int, float | None]], done: bool = False) -> None:
    folder = root / "countdown"
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        "params": 1000,
        "sft_steps": sum(s for s, _ in parts),
        "seconds": 10.0 * len(parts),
        "val_accuracy": parts[-1][1],
        "parts": [{"steps": s, "val_accuracy": a, "seconds": 10.0} for s, a in parts],
    }
    name = "warmstart.json" if done else "warmstart_progress.json"
    (folder / name).write_text(json.dumps(summary))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_override_names_a_setting_of_the_sft_config(name):
    config = yaml.safe_load(Path("experiments/configs/paper_claims/countdown_sft.yaml").read_text())
    tiny_fields = {f.name for f in dataclasses.fields(TinyModelConfig)}
    for override in VARIANTS[name]:
        key, _, value = override.partition("=")
        assert value, override
        if key.startswith("model.init_args.policy.tiny."):
            assert key.rsplit(".", 1)[1] in tiny_fields, override
            continue
        node = config
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, override
            node = node[part]


def test_variants_spell_out_every_setting_they_vary():
    keys = {name: sorted(o.partition("=")[0] for o in v) for name, v in VARIANTS.items()}
    assert len({tuple(k) for k in keys.values()}) == 1  # the same settings, other values
    assert len({tuple(v) for v in VARIANTS.values()}) == len(VARIANTS)


def test_the_command_continues_the_variant_in_its_own_root(tmp_path):
    study = tmp_path / "study"
    (study / "data").mkdir(parents=True)
    root = recipe_search.variant_root("countdown", "wide_b256", tmp_path / "recipes")
    assert root == tmp_path / "recipes" / "countdown" / "wide_b256"
    assert (root / "data").is_symlink()
    args = recipe_search.command("countdown", "wide_b256", 30.0, root)
    assert args[args.index("--root") + 1] == str(root)
    assert args[args.index("--budget-s") + 1] == "30.0"
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert sets == VARIANTS["wide_b256"]


def test_history_counts_steps_over_parts_from_the_logs_or_else_the_parts(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path / "countdown" / "wide"  # a variant's root under a recipes root
    _progress(root, [(300, 0.02), (200, 0.125)], done=True)
    logs = root / "countdown" / "warmstart_sft"
    for version, points in ((0, [(250, 0.01), (300, 0.02)]), (1, [(200, 0.125)])):
        with SummaryWriter(str(logs / f"version_{version}")) as writer:
            writer.add_scalar("train/loss", 1.0, 1)
            for step, value in points:
                writer.add_scalar("val/accuracy", value, step)
    history = recipe_search.validation_history(root, "countdown")
    assert [(h["step"], round(h["accuracy"], 3)) for h in history] == [
        (250, 0.01), (300, 0.02), (500, 0.125),
    ]  # fmt: skip
    # The parts' own step counts place later parts (a part's last check may log its last
    # step minus one); a count that does not match the logged parts is not used.
    with_parts = recipe_search.validation_history(root, "countdown", [301, 200])
    assert [h["step"] for h in with_parts] == [250, 300, 501]
    assert recipe_search.validation_history(root, "countdown", [301]) == history
    found = recipe_search.summarize("countdown", tmp_path)
    assert [h["step"] for h in found["wide"]["history"]] == [250, 300, 500]
    summary = json.loads((root / "countdown" / "warmstart.json").read_text())
    assert recipe_search.parts_history(summary) == [
        {"step": 300, "accuracy": 0.02}, {"step": 500, "accuracy": 0.125},
    ]  # fmt: skip


def test_summarize_and_merge_keep_the_latest_record_of_each_variant(tmp_path):
    recipes = tmp_path / "recipes"
    _progress(recipes / "countdown" / "base", [(100, 0.0), (100, 0.0)])
    (recipes / "countdown" / "untrained").mkdir()
    found = recipe_search.summarize("countdown", recipes)
    assert list(found) == ["base"]
    assert found["base"]["history"] == [{"step": 100, "accuracy": 0.0},
                                        {"step": 200, "accuracy": 0.0}]  # fmt: skip
    assert not found["base"]["finished"] and found["base"]["overrides"] == VARIANTS["base"]
    older = tmp_path / "call1.json"
    older.write_text(json.dumps({"b256": {"sft_steps": 5, "overrides": ["data.batch_size=256"]},
                                 "wide_b256": {"sft_steps": 5}}))  # fmt: skip
    newer = tmp_path / "call2.json"
    newer.write_text(json.dumps({"wide_b256": {"sft_steps": 9}}))
    merged = recipe_search.merge("countdown", [older, newer], tmp_path / "out.json", recipes)
    assert {n: r["sft_steps"] for n, r in merged.items()} == {"base": 200, "b256": 5,
                                                             "wide_b256": 9}  # fmt: skip
    assert merged["b256"]["overrides"] == VARIANTS["b256"]  # spelled out, as tried
    assert json.loads((tmp_path / "out.json").read_text()) == merged
    newer.write_text("{not json")
    with pytest.raises(SystemExit, match="call2.json"):
        recipe_search.merge("countdown", [newer], tmp_path / "out.json", recipes)


def test_main_trains_every_variant_at_once_and_writes_one_file(tmp_path, monkeypatch):
    started = []

    class FakeProcess:
        def __init__(self, args, stdout, stderr):
            root = Path(args[args.index("--root") + 1])
            _progress(root, [(7, 0.0)])
            started.append(root.name)

        def wait(self):
            return 0

    monkeypatch.setattr(recipe_search.subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(recipe_search, "RECIPES_ROOT", tmp_path / "recipes")
    monkeypatch.setattr(recipe_search, "ROOT", tmp_path / "study")
    (tmp_path / "study" / "data").mkdir(parents=True)
    out = tmp_path / "out"
    found = recipe_search.main(
        ["--task", "countdown", "--budget-s", "5", "--out", str(out),
         "--variants", "b256", "wide_b256"]
    )  # fmt: skip
    assert sorted(started) == ["b256", "wide_b256"] and sorted(found) == sorted(started)
    assert [p.name for p in out.iterdir()] == ["recipes_countdown.json"]
    with pytest.raises(SystemExit):
        recipe_search.main(["--task", "countdown"])
