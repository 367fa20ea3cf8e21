"""Writes the trained policy in Hugging Face format when training ends."""

from __future__ import annotations

from pathlib import Path

import lightning as L


class HFExport(L.Callback):
    """Saves ``policy`` and tokenizer with ``save_pretrained`` at the end of ``fit``.

    Args:
        dirpath: target directory; default ``<log_dir>/hf_checkpoint``.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath
        self.saved_to: Path | None = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        target = self.dirpath or str(
            Path(trainer.log_dir or trainer.default_root_dir) / "hf_checkpoint"
        )
        self.saved_to = pl_module.save_hf(target)
