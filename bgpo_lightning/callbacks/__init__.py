"""Callbacks: Hugging Face export (gradient statistics come with a later issue)."""

from bgpo_lightning.callbacks.hf_export import HFExport

__all__ = ["HFExport"]
