"""Names of the policy objectives the RL module can optimise."""

from __future__ import annotations

from bgpo_lightning.errors import ConfigError

#: ``bgpo``: per-sample backward, memory flat in n_t. ``vrpo_ol``: all n_t graphs, one backward.
OBJECTIVES = ("bgpo", "vrpo_ol")


def check_objective(name: str) -> str:
    """Returns ``name`` if it is a known objective, else raises a one-line ConfigError."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; choose one of: {', '.join(OBJECTIVES)}")
    return name
