"""Callbacks: Hugging Face export and gradient bias/variance statistics against n_t."""

from bgpo_lightning.callbacks.gradient_statistics import GradientStatistics
from bgpo_lightning.callbacks.hf_export import HFExport

__all__ = ["GradientStatistics", "HFExport"]
