"""Advantages and policy objectives as pure functions of tensors."""

from bgpo_lightning.objectives.advantages import group_advantages
from bgpo_lightning.objectives.bgpo import bgpo_bound, bgpo_sample_term
from bgpo_lightning.objectives.kl import k3_kl
from bgpo_lightning.objectives.registry import OBJECTIVES, check_objective
from bgpo_lightning.objectives.vrpo_ol import vrpo_ol_objective

__all__ = [
    "OBJECTIVES",
    "bgpo_bound",
    "bgpo_sample_term",
    "check_objective",
    "group_advantages",
    "k3_kl",
    "vrpo_ol_objective",
]
