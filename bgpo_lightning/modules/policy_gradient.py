"""Gradient of the RL objective for a stored rollout, for callbacks that measure it.

A mixin of :class:`~bgpo_lightning.modules.rl.DiffusionRLModule`: it runs that module's
likelihood loop (the one training runs) with ``torch.autograd.grad`` as its backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch

from bgpo_lightning.diffusion.estimators import build_estimator
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules.likelihood import OldTerms
from bgpo_lightning.modules.rollout import Rollout
from bgpo_lightning.modules.sharding import is_sharded
from bgpo_lightning.objectives import Objective, build_objective


def check_unsharded(policy: torch.nn.Module) -> None:
    """Raises for an FSDP2-sharded policy: ``torch.autograd.grad`` with respect to its sharded
    parameters silently returns no gradient (FSDP2's forward runs on gathered copies, whose
    gradients only its own backward hooks reduce into the shards), so every measured gradient
    would be zero.

    Raises:
        ConfigError: ``policy`` holds FSDP2-sharded parameters.
    """
    if is_sharded(policy):
        raise ConfigError(
            "policy_gradient (the GradientStatistics callback) does not support FSDP2-sharded "
            "parameters (ModelParallelStrategy): use DDP or a single device to measure"
        )


class PolicyGradientMixin:
    """Adds :meth:`policy_gradient` to the RL module."""

    def policy_gradient(
        self,
        rollout: Rollout,
        num_samples: int,
        generator: torch.Generator,
        objective: str | Objective | None = None,
        params: Sequence[torch.nn.Parameter] | None = None,
        out: torch.Tensor | None = None,
        estimator: str | None = None,
        estimator_settings: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """The first inner update's gradient for ``rollout`` with ``num_samples`` fresh masks.

        It is what the first inner update of a training step back-propagates, at the current
        parameters, with masks drawn from ``generator``: the on-policy gradient (old values
        are the detached values of the same forwards, as in training), with the advantages
        stored in ``rollout``. For objectives that use one mask draw per inner update
        (diffu-GRPO, wd1) it is the mean over ``num_samples`` independent draws of that
        update's gradient.

        The loss goes through the training loop (:class:`LikelihoodLoop`) with
        ``torch.autograd.grad`` as its backward, each graph freed before the next: activation
        memory is flat in ``num_samples``. A coupled objective whose on-policy gradient is
        linear (VRPO-OL, GDPO: ``Objective.on_policy_linear``) runs as that linear twin; one
        that is coupled even on-policy (SPG's upper bound) keeps a micro-batch's graphs.
        Nothing is written to ``.grad``, no Lightning hook fires, and DDP's reducer is not
        involved: ``autograd.grad`` does not run the parameters' gradient-accumulation nodes
        that DDP hooks. Runs in the Trainer's precision context (autocast) and the policy's
        current mode.

        Args:
            rollout: the batch (``training_step`` returns it under ``"rollout"``).
            num_samples: n_t, the mask samples per response.
            generator: source of the masks, on this module's device.
            objective: a registry name (built with this module's settings when it is this
                module's objective, else with defaults) or an objective; None: this module's.
            params: the parameters to differentiate; default every trainable policy parameter.
            out: flat float64 buffer of their total size to write into (zeroed first);
                allocated when None.
            estimator: overrides this module's estimator (with ``estimator_settings``).
            estimator_settings: settings of ``estimator``.

        Returns:
            The flat float64 gradient, parameters concatenated in the order of ``params``.
        """
        check_unsharded(self.policy)
        # Coupled objectives that are linear on-policy (VRPO-OL) run as their linear twin:
        # same gradient, memory flat in num_samples.
        objective = self._measured_objective(objective).on_policy_linear()
        if params is None:
            params = [p for p in self.policy.parameters() if p.requires_grad]
        params = list(params)
        numel = sum(p.numel() for p in params)
        if out is None:
            out = torch.zeros(numel, dtype=torch.float64, device=self.device)
        elif out.numel() != numel or out.dtype != torch.float64:
            raise ValueError(f"out must be float64 with {numel} entries, got {out.shape}")
        else:
            out.zero_()
        mask_estimator = self.estimator
        if estimator is not None:
            mask_estimator = build_estimator(estimator, estimator_settings)
        masks = mask_estimator.draw(
            rollout.num_responses,
            rollout.response_length,
            num_samples,
            generator,
            self.device,
            prompt_length=rollout.prompt_ids.shape[1],
        )
        # Objectives that draw fewer masks per update than asked for (d1: one) get the mean
        # of the first update's gradient over independent draws.
        per_update = min(objective.num_samples(num_samples, 1), num_samples)
        updates = [
            range(i, min(i + per_update, num_samples)) for i in range(0, num_samples, per_update)
        ]
        scale = 1.0 / len(updates)

        def backward(loss: torch.Tensor) -> None:
            grads = torch.autograd.grad(loss * scale, params, allow_unused=True)
            offset = 0
            for param, grad in zip(params, grads, strict=True):
                if grad is not None:
                    out[offset : offset + param.numel()].add_(grad.reshape(-1))
                offset += param.numel()

        loop = self.likelihood_loop(objective)
        precision = self._trainer.precision_plugin.forward_context() if self._trainer else None
        with torch.enable_grad(), precision or nullcontext():
            for samples in updates:
                loop.update(rollout, masks, OldTerms(), samples, backward)
        return out

    def _measured_objective(self, objective: str | Objective | None) -> Objective:
        if objective is None:
            return self.objective
        if isinstance(objective, Objective):
            return objective
        if objective == self.objective.name:
            return self.objective
        return build_objective(objective)
