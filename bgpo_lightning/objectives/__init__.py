"""Advantages and policy objectives; each objective is one file, selected by name.

Importing this package registers every objective in :data:`OBJECTIVES`.
"""

from bgpo_lightning.objectives.advantages import group_advantages
from bgpo_lightning.objectives.base import Objective
from bgpo_lightning.objectives.bgpo import BGPO, bgpo_bound, bgpo_sample_term, bgpo_term
from bgpo_lightning.objectives.diffu_grpo import DiffuGRPO
from bgpo_lightning.objectives.gdpo import GDPO
from bgpo_lightning.objectives.kl import k3_kl
from bgpo_lightning.objectives.registry import (
    OBJECTIVES,
    build_objective,
    check_objective,
    register,
)
from bgpo_lightning.objectives.spg import SPG
from bgpo_lightning.objectives.terms import LossContext, SampleTerms
from bgpo_lightning.objectives.vrpo_ol import VRPOOL, vrpo_ol_objective
from bgpo_lightning.objectives.wd1 import WD1

__all__ = [
    "BGPO",
    "GDPO",
    "SPG",
    "WD1",
    "DiffuGRPO",
    "OBJECTIVES",
    "VRPOOL",
    "LossContext",
    "Objective",
    "SampleTerms",
    "bgpo_bound",
    "bgpo_sample_term",
    "bgpo_term",
    "build_objective",
    "check_objective",
    "group_advantages",
    "k3_kl",
    "register",
    "vrpo_ol_objective",
]
