"""The study's data files and tokenizer, from d1's splits (``../shared/datasets``).

Validation is the last ``--num-val`` rows of d1's training file, held out from training, so
that learning rates and checkpoints are picked without the test split. Files go under
``<root>/data/<task>/{train,val,test}.jsonl`` (git-ignored: benchmark data is never
committed) and the tokenizer under ``<root>/data/tokenizer``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from bgpo_lightning.policy.bpe_tokenizer import train_bpe_tokenizer
from bgpo_lightning.tasks.registry import get_task
from experiments.paper_claims.entry import ROOT
from experiments.paper_claims.plan import TASKS

NUM_VAL = 256
VOCAB_SIZE = 1024
TOKENIZER_EXAMPLES = 2000  # per task: the prompts are templates, a few thousand cover them


def data_dir(root: Path, task: str) -> Path:
    return root / "data" / task


def tokenizer_dir(root: Path) -> Path:
    return root / "data" / "tokenizer"


def data_args(root: Path, task: str) -> list[str]:
    """CLI arguments pointing a config's data splits at ``root``'s files."""
    args = []
    for split in ("train", "val", "test"):
        args += [f"--data.{split}_path", str(data_dir(root, task) / f"{split}.jsonl")]
    return args


def split_files(datasets: Path, root: Path, num_val: int = NUM_VAL) -> None:
    """Writes train (all but the last ``num_val`` rows), val and test files of each task."""
    for task in TASKS:
        source = datasets / task
        lines = [line for line in (source / "train.jsonl").read_text().splitlines() if line]
        if len(lines) <= num_val:
            raise SystemExit(f"error: {source / 'train.jsonl'} has {len(lines)} rows, need more")
        out = data_dir(root, task)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.jsonl").write_text("\n".join(lines[:-num_val]) + "\n")
        (out / "val.jsonl").write_text("\n".join(lines[-num_val:]) + "\n")
        shutil.copyfile(source / "test.jsonl", out / "test.jsonl")


def tokenizer_texts(root: Path, per_task: int = TOKENIZER_EXAMPLES) -> list[str]:
    """Prompts and SFT targets, in d1's format, of the first training rows of each task."""
    texts = []
    for task in TASKS:
        examples = get_task(task).load(data_dir(root, task) / "train.jsonl", limit=per_task)
        texts += [text for e in examples for text in (e.prompt, e.target) if text]
    return texts


def prepare(datasets: Path, root: Path = ROOT, vocab_size: int = VOCAB_SIZE) -> None:
    split_files(datasets, root)
    tokenizer = train_bpe_tokenizer(tokenizer_texts(root), vocab_size)
    tokenizer.save_pretrained(tokenizer_dir(root))
    print(f"data and tokenizer ({len(tokenizer)} tokens) under {root / 'data'}", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--root", type=Path, default=ROOT)
    args = p.parse_args(argv)
    prepare(args.datasets, args.root)


if __name__ == "__main__":
    main()
