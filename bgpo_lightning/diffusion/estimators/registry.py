"""The registry of mask estimators: a name in YAML selects a class, settings come as a dict."""

from __future__ import annotations

from bgpo_lightning.diffusion.estimators.base import MaskEstimator
from bgpo_lightning.settings import Registry

_REGISTRY: Registry[MaskEstimator] = Registry("estimator")

#: name -> MaskEstimator subclass, filled by :func:`register_estimator` as the files are imported.
ESTIMATORS = _REGISTRY.classes
#: Class decorator: makes an estimator selectable by name.
register_estimator = _REGISTRY.register
#: Returns the name if it is a known estimator, else raises a one-line ConfigError.
check_estimator = _REGISTRY.check
#: ``build_estimator(name, settings, defaults)``: the estimator with its settings block;
#: ``defaults`` fills settings the block does not set (the RL module passes the rollout's
#: ``block_length``).
build_estimator = _REGISTRY.build
