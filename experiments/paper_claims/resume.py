"""Runs that outlive a lent machine's call: a checkpoint after every rollout batch, resumed
by the next call on the same machine.

A run works in its scratch folder: its own result folder by default, or the same path
relative to the study's root under ``$PAPER_CLAIMS_SCRATCH`` when that is set
(``gpu_session.sh`` sets it outside the repository copy, so that the study's folders carried
into the next call do not replace it). Keyed by the result folder, not by the run's name: a
probe run (``<task>/probe/...``) and the sweep run of the same method, lr and seed may run at
once. The result folder gets only ``result.json`` and the gradient statistics, once the run
is done; the checkpoint is then deleted.

The checkpoint is Lightning's (weights, optimizer, the data loader's position, the module's
random streams, the callbacks' states), so a resumed run continues where the last finished
batch left it. ``progress.json`` beside it ties it to the warm start it came from.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import lightning as L

SCRATCH_VARIABLE = "PAPER_CLAIMS_SCRATCH"
CHECKPOINT = "last.ckpt"
PROGRESS = "progress.json"


def scratch_dir(result_dir: Path, root: Path) -> Path:
    """Where the run writing to ``result_dir`` (under the study's ``root``) works."""
    base = os.environ.get(SCRATCH_VARIABLE)
    if not base:
        return result_dir
    try:
        return Path(base) / result_dir.relative_to(root)
    except ValueError:
        raise ValueError(f"{result_dir} is not under the study's root {root}") from None


def checkpoint_dir(scratch: Path) -> Path:
    return scratch / "checkpoint"


def resumable_checkpoint(scratch: Path, warm_start_sha256: str) -> tuple[Path, dict] | None:
    """The checkpoint to resume from and its progress record, if one was left by a run
    from the same warm start; None means start afresh."""
    folder = checkpoint_dir(scratch)
    checkpoint, progress = folder / CHECKPOINT, folder / PROGRESS
    if not (checkpoint.is_file() and progress.is_file()):
        return None
    record = json.loads(progress.read_text())
    if record.get("warm_start_sha256") != warm_start_sha256:
        return None
    return checkpoint, record


def prepare_scratch(scratch: Path, warm_start_sha256: str) -> tuple[Path | None, dict]:
    """Empties ``scratch`` unless it holds a resumable checkpoint; returns that checkpoint
    (or None) and its progress record (a fresh one for a fresh start)."""
    found = resumable_checkpoint(scratch, warm_start_sha256)
    if found is not None:
        return found
    # A run stopped before its first checkpoint leaves logs behind; a fresh start must not
    # read them.
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    return None, {"warm_start_sha256": warm_start_sha256, "wall_s": 0.0, "resumed_at": []}


class BatchCheckpoint(L.Callback):
    """Saves the trainer's checkpoint after every rollout batch, whole or not at all (the
    scheduler kills runs at its deadline), with ``progress``: the batches done and the time
    spent so far, over every part of the run."""

    def __init__(self, folder: Path, progress: dict, elapsed) -> None:
        self.folder, self.progress, self.elapsed = folder, progress, elapsed

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / (CHECKPOINT + ".partial")
        trainer.save_checkpoint(partial)
        record = dict(self.progress, batches=batch_idx + 1)
        record["wall_s"] = self.progress["wall_s"] + self.elapsed()
        (self.folder / (PROGRESS + ".partial")).write_text(json.dumps(record))
        # The checkpoint first: a progress record never points at an older one.
        os.replace(partial, self.folder / CHECKPOINT)
        os.replace(self.folder / (PROGRESS + ".partial"), self.folder / PROGRESS)


def merged_gradient_statistics(scratch: Path, target: Path) -> bool:
    """Joins the ``gradient_statistics.csv`` of every part of a run (one logger version
    each, in order) into ``target``; False when there were none."""
    found = sorted(
        (p for p in scratch.rglob("gradient_statistics.csv") if p != target),
        key=lambda p: [int(s) if s.isdigit() else s for s in p.parts[-2].split("_")],
    )
    if not found:
        return False
    lines = found[0].read_text().splitlines()
    for path in found[1:]:
        lines += path.read_text().splitlines()[1:]  # the header once
    target.write_text("\n".join(lines) + "\n")
    return True
