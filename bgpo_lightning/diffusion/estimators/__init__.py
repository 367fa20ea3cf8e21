"""Mask/ELBO estimators: how the masks of the likelihood passes are drawn, by name.

Importing this package registers every estimator:

* ``iid``: the BGPO paper's i.i.d. timesteps, weight ``1/t``.
* ``stratified``: the official BGPO code's stratified mask counts, weight ``L/k`` (default).
* ``complementary``: antithetic pairs of complementary masks (coupled-GRPO, ESPO).
* ``sdmc``: GDPO's quadrature over ``t`` with random masks.
* ``one_step``: d1's fully masked response with a lightly masked prompt (not an ELBO).
* ``blockwise``: SPG's block-wise masks.
"""

from bgpo_lightning.diffusion.estimators import (  # noqa: F401  (imported to register)
    blockwise,
    complementary,
    iid,
    one_step,
    sdmc,
    stratified,
)
from bgpo_lightning.diffusion.estimators.base import MaskEstimator, NoSettings
from bgpo_lightning.diffusion.estimators.registry import (
    ESTIMATORS,
    build_estimator,
    check_estimator,
    register_estimator,
)

__all__ = [
    "ESTIMATORS",
    "MaskEstimator",
    "NoSettings",
    "build_estimator",
    "check_estimator",
    "register_estimator",
]
