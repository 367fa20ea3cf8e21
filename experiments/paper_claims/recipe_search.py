"""Warm-start recipes tried side by side when a task's SFT does not reach its threshold.

Each variant is the task's SFT config with a few overrides, trained by ``warm_start`` in its
own root (``runs/paper_claims_recipes/<task>/<variant>``, sharing the study's prepared data)
for the same time budget, all at once on one GPU. Run the same command again to continue
every variant from its last part. Writes ``recipes_<task>.json`` (the only file in OUT): every
variant's steps, its validation accuracy after every check, and the end of its log.

    python -m experiments.paper_claims.recipe_search --task countdown --budget-s 480 \
        --out OUT [--variants b256 wide_b256]

The files from several calls (later ones win) and the variants trained here are merged into
the record the report shows (``runs/paper_claims/<task>/recipe_search.json``) with

    python -m experiments.paper_claims.recipe_search --task countdown --merge OUT1/... OUT2/...

The variants are chosen on validation accuracy only, before any RL run, so picking one does
not favour any RL method.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from experiments.paper_claims.entry import ROOT
from experiments.paper_claims.plan import TASKS
from experiments.paper_claims.warm_start import warm_start_record

RECIPES_ROOT = Path("runs/paper_claims_recipes")


def _recipe(shape: tuple[int, int, int, int], batch: int, lr: float, rope: int = 500_000):
    """Every setting a variant may change, spelled out: a later edit of the config (which
    takes the chosen recipe) leaves each variant's meaning as it was when it was tried."""
    hidden, layers, heads, intermediate = shape
    tiny = "model.init_args.policy.tiny"
    return [
        f"{tiny}.hidden_size={hidden}", f"{tiny}.num_layers={layers}",
        f"{tiny}.num_heads={heads}", f"{tiny}.intermediate_size={intermediate}",
        f"{tiny}.rope_theta={rope}", f"data.batch_size={batch}", f"model.init_args.optim.lr={lr}",
    ]  # fmt: skip


_SMALL = (384, 6, 6, 1024)  # 11M parameters: Sudoku's warm start
_WIDE = (512, 8, 8, 1536)  # 28M
#: name -> ``--set`` overrides of the task's SFT config. Larger batches cost little more
#: time per step on a GPU shared by small runs, which are bound by kernel launches.
VARIANTS: dict[str, list[str]] = {
    "base": _recipe(_SMALL, 64, 1e-3),  # the first recipe, trained as the study's warm start
    "b256": _recipe(_SMALL, 256, 1e-3),
    "b256_rope10k": _recipe(_SMALL, 256, 1e-3, rope=10_000),
    "wide_b256": _recipe(_WIDE, 256, 5e-4),
    "wide_b256_rope10k": _recipe(_WIDE, 256, 5e-4, rope=10_000),
}


def variant_root(task: str, name: str, recipes_root: Path = RECIPES_ROOT) -> Path:
    """A variant's study root; its ``data`` links to the study's prepared data."""
    root = recipes_root / task / name
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    if not data.exists():
        data.symlink_to((ROOT / "data").resolve(), target_is_directory=True)
    return root


def command(task: str, name: str, budget_s: float, root: Path) -> list[str]:
    sets = [item for o in VARIANTS[name] for item in ("--set", o)]
    return [
        sys.executable, "-m", "experiments.paper_claims.warm_start", "--task", task,
        "--root", str(root), "--budget-s", str(budget_s), *sets,
    ]  # fmt: skip


def log_file(root: Path) -> Path:
    return root / "warm_start.log"


def parts_history(summary: dict) -> list[dict]:
    """The validation accuracy at the end of each part: all that is left without the logs."""
    history, step = [], 0
    for part in summary.get("parts", []):
        step += part["steps"]
        if part.get("val_accuracy") is not None:
            history.append({"step": step, "accuracy": part["val_accuracy"]})
    return history


def validation_history(root: Path, task: str, part_steps: list[int] | None = None) -> list[dict]:
    """``val/accuracy`` at every check of every part, with steps counted over all parts: each
    part starts after the steps of those before it (``part_steps``, one per logged part, else
    the last step each logged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = []
    versions = sorted(
        (root / task / "warmstart_sft").glob("version_*"), key=lambda p: int(p.name[8:])
    )
    for version in versions:
        events = EventAccumulator(str(version), size_guidance={"scalars": 0})
        events.Reload()
        if "val/accuracy" in events.Tags()["scalars"]:
            logged.append(events.Scalars("val/accuracy"))
    if part_steps is None or len(part_steps) != len(logged):
        part_steps = [max(p.step for p in points) for points in logged]
    history, offset = [], 0
    for points, steps in zip(logged, part_steps, strict=True):
        history += [{"step": offset + p.step, "accuracy": p.value} for p in points]
        offset += steps
    return history


def summarize(task: str, recipes_root: Path = RECIPES_ROOT) -> dict:
    """Every variant trained under ``recipes_root``, by name."""
    found = {}
    for root in sorted(p for p in (recipes_root / task).glob("*") if p.is_dir()):
        record = warm_start_record(root, task)
        if not record.is_file():
            continue
        summary = json.loads(record.read_text())
        steps = [part["steps"] for part in summary.get("parts", [])]
        history = validation_history(root, task, steps) or parts_history(summary)
        found[root.name] = {
            "overrides": VARIANTS.get(root.name),
            "params": summary.get("params"),
            "sft_steps": summary.get("sft_steps"),
            "seconds": summary.get("seconds"),
            "finished": record.name == "warmstart.json",
            "val_accuracy": summary.get("val_accuracy"),
            "history": history,
            "log_tail": log_file(root).read_text()[-1500:] if log_file(root).is_file() else "",
        }
    return found


def merge(task: str, files: list[Path], into: Path, recipes_root: Path = RECIPES_ROOT) -> dict:
    """The variants trained here, then those of ``files`` in order (a later record of a
    variant replaces an earlier one), written to ``into``."""
    merged = summarize(task, recipes_root)
    for path in files:
        try:
            merged.update(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            raise SystemExit(f"error: {path}: not a recipe search record ({error})") from None
    for name, entry in merged.items():  # older records hold overrides of an older config
        entry["overrides"] = VARIANTS.get(name, entry.get("overrides"))
    into.parent.mkdir(parents=True, exist_ok=True)
    into.write_text(json.dumps(merged, indent=1))
    print(f"wrote {into}: variants {sorted(merged)}")
    return merged


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--budget-s", type=float)
    p.add_argument("--out", type=Path)
    p.add_argument(
        "--variants", nargs="+", choices=sorted(VARIANTS), default=sorted(set(VARIANTS) - {"base"})
    )
    p.add_argument("--merge", nargs="+", type=Path, metavar="FILE")
    args = p.parse_args(argv)
    if args.merge:
        return merge(args.task, args.merge, ROOT / args.task / "recipe_search.json", RECIPES_ROOT)
    if args.budget_s is None or args.out is None:
        p.error("--budget-s and --out are required to train")
    args.out.mkdir(parents=True, exist_ok=True)
    running = []
    for name in args.variants:
        root = variant_root(args.task, name, RECIPES_ROOT)
        log = log_file(root).open("a")
        running.append((subprocess.Popen(command(args.task, name, args.budget_s, root),
                                         stdout=log, stderr=subprocess.STDOUT), log))  # fmt: skip
    for process, log in running:
        process.wait()
        log.close()
    found = summarize(args.task, RECIPES_ROOT)
    (args.out / f"recipes_{args.task}.json").write_text(json.dumps(found, indent=1))
    for name, r in found.items():
        best = max((h["accuracy"] for h in r["history"]), default=None)
        print(f"{name:20s} steps {r['sft_steps']}  last val {r['val_accuracy']}  best {best}")
    return found


if __name__ == "__main__":
    main()
