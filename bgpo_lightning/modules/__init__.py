"""LightningModules: RL with BGPO/VRPO-OL and the masked-diffusion SFT warm start."""

from bgpo_lightning.modules.base import DiffusionPolicyModule
from bgpo_lightning.modules.rl import DiffusionRLModule
from bgpo_lightning.modules.sft import DiffusionSFTModule

__all__ = ["DiffusionPolicyModule", "DiffusionRLModule", "DiffusionSFTModule"]
