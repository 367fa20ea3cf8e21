"""The registry of objectives: a name in YAML selects a class, settings come as a dict."""

from __future__ import annotations

from bgpo_lightning.objectives.base import Objective
from bgpo_lightning.settings import Registry

_REGISTRY: Registry[Objective] = Registry("objective")

#: name -> Objective subclass, filled by :func:`register` as the objective files are imported.
OBJECTIVES = _REGISTRY.classes
#: Class decorator: makes an objective selectable by name.
register = _REGISTRY.register
#: Returns the name if it is a known objective, else raises a one-line ConfigError.
check_objective = _REGISTRY.check
#: ``build_objective(name, settings)``: the objective with its settings block.
build_objective = _REGISTRY.build
