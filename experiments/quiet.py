"""Output a person wants to read: silence what does not apply to our entry points.

Only the entry points (``experiments.run``, ``experiments.embedded_default``) call this; code
that imports ``bgpo_lightning`` as a library keeps every message Lightning gives.
"""

from __future__ import annotations

import logging
import warnings

# Warnings that say nothing about a run of ours.
IRRELEVANT_WARNINGS = (
    # Our RL training_step takes its optimizer step itself; a checkpoint taken after it is the
    # state a resumed run must start from, which is what this warning offers to change.
    "Using ModelCheckpoint with manual optimization",
    # A deprecation inside Lightning's own code that a user cannot act on.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # We build the CLI from Python with our own arguments on purpose (embedded default).
    "LightningCLI's args parameter",
)


class _DropTips(logging.Filter):
    """Drops Lightning's advertisements for its cloud products (``💡 Tip: ...``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip: For seamless cloud" not in record.getMessage()


def quiet_entry_point() -> None:
    """Silences tips, irrelevant warnings and transformers' save progress bars."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropTips())
    for message in IRRELEVANT_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Writing model shards" on every export
