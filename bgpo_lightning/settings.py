"""Nested settings blocks (an objective's, an estimator's) from plain YAML dictionaries."""

from __future__ import annotations

import dataclasses
from typing import Any

from bgpo_lightning.errors import ConfigError


def build_settings(cls: type, owner: str, values: dict[str, Any] | None) -> Any:
    """``cls(**values)`` for a settings dataclass; an unknown key is a one-line ConfigError.

    Args:
        cls: the settings dataclass; its ``__post_init__`` validates values.
        owner: how the error names the block's owner, e.g. ``objective 'gdpo'``.
        values: the block as parsed from YAML (None: all defaults).
    """
    values = dict(values or {})
    known = [field.name for field in dataclasses.fields(cls)]
    for key in values:
        if key not in known:
            choices = ", ".join(known) if known else "none"
            raise ConfigError(f"{owner} has no setting {key!r}; its settings: {choices}")
    return cls(**values)
