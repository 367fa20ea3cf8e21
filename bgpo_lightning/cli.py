"""The Lightning CLI: ``python -m experiments.run fit|validate|test --config ...``."""

from __future__ import annotations

import sys

import lightning as L
from lightning.pytorch.cli import LightningCLI

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.tasks import DatasetFormatError, PromptDataModule

#: Errors that are the user's input, reported in one line instead of a traceback.
USER_ERRORS = (ConfigError, DatasetFormatError, FileNotFoundError)


def build_cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """Parses ``args`` (default: ``sys.argv``), builds the objects, runs the subcommand.

    The model is any LightningModule by ``class_path`` (``DiffusionRLModule`` or
    ``DiffusionSFTModule``); the data is a :class:`PromptDataModule`, which also hands the
    task to the model at run time.
    """
    return LightningCLI(
        L.LightningModule,
        PromptDataModule,
        subclass_mode_model=True,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def main(args: list[str] | None = None) -> int:
    """CLI entry point; input errors become ``error: ...`` on stderr and exit status 2."""
    try:
        build_cli(args)
    except USER_ERRORS as error:
        message = str(error) if not isinstance(error, FileNotFoundError) else _missing(error)
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


def _missing(error: FileNotFoundError) -> str:
    name = error.filename or str(error)
    return f"file not found: {name}" if error.filename else name
