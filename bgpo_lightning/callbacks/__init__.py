"""Callbacks: Hugging Face export, gradient statistics against n_t, progress and curves."""

from bgpo_lightning.callbacks.gradient_statistics import GradientStatistics
from bgpo_lightning.callbacks.hf_export import HFExport
from bgpo_lightning.callbacks.progress import StepProgressBar
from bgpo_lightning.callbacks.training_curves import TrainingCurves

__all__ = ["GradientStatistics", "HFExport", "StepProgressBar", "TrainingCurves"]
