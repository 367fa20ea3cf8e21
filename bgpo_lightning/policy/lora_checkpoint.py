"""Lightning checkpoints of a LoRA policy: the adapter and the training state, not the base.

The frozen base is rebuilt from the config on resume, as the KL reference is, so a checkpoint
holds the adapter (and the optimizer, which only ever sees the adapter) plus a fingerprint of the
base it was trained on. On load the base's entries are filled in from the live policy, so
Lightning's strict loading still catches every other missing or unexpected key.
"""

from __future__ import annotations

import torch

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy.diffusion_lm import DiffusionLM
from bgpo_lightning.policy.lora import adapter_of

#: Checkpoint entry that marks an adapter-only checkpoint and identifies its base.
FINGERPRINT_KEY = "lora_base_fingerprint"


def base_fingerprint(policy: DiffusionLM) -> torch.Tensor:
    """``(P, 2)``: per frozen parameter, the sum and the L2 norm of its weights rounded to
    bfloat16, in float64 on the CPU.

    The rounding makes it blind to the casts of the Trainer's ``precision`` (checkpoints are
    written after it, loaded before it); a different base differs in every entry.
    """
    stats = []
    for p in policy.parameters():
        if p.requires_grad:
            continue
        total = torch.zeros(2, dtype=torch.float64)
        # In chunks: an 8B model's embedding in float32 would be 2 GB more at once.
        for chunk in p.detach().reshape(-1).split(1 << 24):
            rounded = chunk.to(torch.bfloat16).float()
            total += torch.stack([rounded.sum(), rounded.square().sum()]).double().cpu()
        stats.append(torch.stack([total[0], total[1].sqrt()]))
    return torch.stack(stats) if stats else torch.zeros(0, 2, dtype=torch.float64)


def drop_frozen_base(policy: DiffusionLM, checkpoint: dict, prefix: str) -> None:
    """Removes the frozen base's weights from ``checkpoint["state_dict"]`` (keys are
    ``prefix`` + the policy's parameter names) and records its fingerprint; no-op without
    LoRA."""
    if adapter_of(policy) is None:
        return
    state = checkpoint["state_dict"]
    for name, p in policy.named_parameters():
        if not p.requires_grad:
            state.pop(prefix + name, None)
    checkpoint[FINGERPRINT_KEY] = base_fingerprint(policy)


def restore_frozen_base(policy: DiffusionLM, checkpoint: dict, prefix: str) -> None:
    """Fills an adapter-only checkpoint's base entries from the live policy, after checking
    that the live base is the one the adapter was trained on; no-op for a full checkpoint."""
    saved = checkpoint.get(FINGERPRINT_KEY)
    if saved is None:
        return
    if adapter_of(policy) is None:
        raise ConfigError("the checkpoint holds only a LoRA adapter; set policy.lora to load it")
    live = base_fingerprint(policy)
    # Sums taken on another device differ in the last bits; another base differs widely.
    tolerance = 1e-4 * (live.abs() + live[:, 1:])
    if saved.shape != live.shape or not bool(((saved - live).abs() <= tolerance).all()):
        raise ConfigError(
            "the checkpoint's LoRA adapter was trained on another base model than the one "
            "policy builds now (policy.path, policy.dtype, or the embedded model's seed)"
        )
    state = checkpoint["state_dict"]
    for name, p in policy.named_parameters():
        if not p.requires_grad:
            state.setdefault(prefix + name, p.detach())
