"""The Lightning CLI: ``python -m experiments.run fit|validate|test --config ...``."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI

from bgpo_lightning.callbacks import StepProgressBar
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.tasks import DatasetFormatError, PromptDataModule

#: Errors that are the user's input, reported in one line instead of a traceback.
USER_ERRORS = (ConfigError, DatasetFormatError, FileNotFoundError)


class BGPOLightningCLI(LightningCLI):
    """LightningCLI that can restore hyperparameters saved as a plain dictionary.

    The modules save plain hyperparameters (no ``_class_path``, so checkpoints load with
    ``weights_only=True``); Lightning would parse those against ``LightningModule`` itself and
    reject every argument of ``--ckpt_path``. The class path of the configured model is used.
    """

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        """The configured trainer, with a :class:`StepProgressBar` unless bars are off.

        A progress bar a config names itself, or ``enable_progress_bar: false``, wins.
        """
        settings = self.config_init.get(self.subcommand) if self.subcommand else None
        trainer = (settings or self.config_init).get("trainer") or {}
        callbacks = list(kwargs.get("callbacks", trainer.get("callbacks")) or [])
        wanted = trainer.get("enable_progress_bar") is not False
        if wanted and not any(isinstance(c, ProgressBar) for c in callbacks):
            label = getattr(self.model, "progress_label", "train")
            kwargs["callbacks"] = [*callbacks, StepProgressBar(label)]
        return super().instantiate_trainer(**kwargs)

    def _parse_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        settings = self.config[subcommand] if subcommand else None
        ckpt_path = settings.get("ckpt_path") if settings is not None else None
        class_path = getattr(settings.get("model"), "class_path", None) if settings else None
        if not ckpt_path or not Path(ckpt_path).is_file() or class_path is None:
            return super()._parse_ckpt_path()
        checkpoint = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        hparams = dict(checkpoint.get("hyper_parameters", {}))
        hparams.pop("_instantiator", None)
        if not hparams or "_class_path" in hparams:
            return super()._parse_ckpt_path()
        model = {"class_path": class_path, "init_args": hparams}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)
        except SystemExit:
            sys.stderr.write("Parsing of ckpt_path hyperparameters failed!\n")
            raise


def build_cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """Parses ``args`` (default: ``sys.argv``), builds the objects, runs the subcommand.

    The model is any LightningModule by ``class_path`` (``DiffusionRLModule`` or
    ``DiffusionSFTModule``); the data is a :class:`PromptDataModule`, which also hands the
    task to the model at run time.
    """
    return BGPOLightningCLI(
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
        with warnings.catch_warnings():
            # experiments.run passes sys.argv[1:] as ``args``; LightningCLI would warn about it.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            build_cli(args)
    except Exception as exc:
        error = _user_error(exc)
        if error is None:
            raise
        message = str(error) if not isinstance(error, FileNotFoundError) else _missing(error)
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


def _user_error(exc: BaseException) -> BaseException | None:
    """The user-input error ``exc`` is or was caused by, else None.

    jsonargparse re-raises an error from a class's ``__init__`` (an unknown objective, say) as
    a ValueError listing the union subtypes tried, with the original as ``__cause__``. Only
    explicit causes are followed: a bug raised while handling a user error stays a traceback.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, USER_ERRORS):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def _missing(error: FileNotFoundError) -> str:
    name = error.filename or str(error)
    return f"file not found: {name}" if error.filename else name
