"""Writes the trained policy in Hugging Face format when training ends."""

from __future__ import annotations

from pathlib import Path

import lightning as L


class HFExport(L.Callback):
    """Saves ``policy`` and tokenizer with ``save_pretrained`` at the end of ``fit``.

    Runs on every rank: under FSDP2 gathering the sharded weights is a collective (and
    ``trainer.log_dir`` broadcasts under any distributed strategy); the module's ``save_hf``
    writes on global rank 0 only, where ``saved_to`` is recorded.

    Args:
        dirpath: target directory; default ``<log_dir>/hf_checkpoint``.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath
        self.saved_to: Path | None = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        target = self.dirpath or str(
            Path(trainer.log_dir or trainer.default_root_dir) / "hf_checkpoint"
        )
        saved_to = pl_module.save_hf(target)
        if trainer.is_global_zero:
            self.saved_to = saved_to
