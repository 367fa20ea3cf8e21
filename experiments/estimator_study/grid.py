"""The estimators the study compares, and which forward budgets each can use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bgpo_lightning.diffusion.estimators import MaskEstimator, build_estimator
from bgpo_lightning.errors import ConfigError


@dataclass(frozen=True)
class EstimatorSpec:
    """One line of the study: a registered estimator with fixed settings.

    Attributes:
        label: how tables and figures name it (``sdmc2``).
        name: the registry name (``sdmc``).
        settings: the estimator's settings block, or None for its defaults.
    """

    label: str
    name: str
    settings: dict[str, Any] | None = field(default=None)

    def build(self) -> MaskEstimator:
        """The estimator itself."""
        return build_estimator(self.name, self.settings)

    def unavailable(self, budget: int) -> str | None:
        """Why this estimator cannot spend exactly ``budget`` forwards, or None if it can.

        The estimator's own check decides (odd budgets for complementary pairs, budgets that
        the node count does not divide for SDMC): the budget is never rounded to fit.
        """
        try:
            self.build().check_num_samples(budget)
        except ConfigError as error:
            return str(error)
        return None


#: The study's estimators, in table order (d1's one-step estimator last: it is not an ELBO).
SPECS = (
    EstimatorSpec("iid", "iid"),
    EstimatorSpec("stratified", "stratified"),
    EstimatorSpec("complementary", "complementary"),
    EstimatorSpec("sdmc2", "sdmc", {"rule": "gauss_legendre", "nodes": 2}),
    EstimatorSpec("sdmc3", "sdmc", {"rule": "gauss_legendre", "nodes": 3}),
    EstimatorSpec("one_step", "one_step", {"prompt_mask_prob": 0.15}),
)

#: Labels of estimators that target the ELBO (used for the verdict on ELBO bias).
ELBO_ESTIMATORS = ("iid", "stratified", "complementary", "sdmc2", "sdmc3")


def select_specs(labels: list[str] | None) -> list[EstimatorSpec]:
    """The specs named by ``labels`` in table order (None: all); unknown labels are an error."""
    if labels is None:
        return list(SPECS)
    known = {spec.label: spec for spec in SPECS}
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise ConfigError(f"unknown estimators {unknown}; choose from {', '.join(known)}")
    return [spec for spec in SPECS if spec.label in labels]
