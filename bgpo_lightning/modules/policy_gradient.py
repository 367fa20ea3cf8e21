"""Gradient of the RL objective for a stored rollout, for callbacks that measure it.

A mixin of :class:`~bgpo_lightning.modules.rl.DiffusionRLModule`: it reuses that module's
``_forward_sample``, ``_micro_batches``, ``timestep_sampler``, ``kl_coef`` and ``policy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch

from bgpo_lightning.diffusion.masking import check_timestep_sampler, draw_masks
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives import bgpo_sample_term, check_objective, vrpo_ol_objective


class PolicyGradientMixin:
    """Adds :meth:`policy_gradient` to the RL module."""

    def policy_gradient(
        self,
        rollout: dict,
        advantages: torch.Tensor,
        objective: str,
        num_samples: int,
        generator: torch.Generator,
        params: Sequence[torch.nn.Parameter] | None = None,
        out: torch.Tensor | None = None,
        timestep_sampler: str | None = None,
    ) -> torch.Tensor:
        """The training loss's gradient for ``rollout`` with ``num_samples`` fresh masks.

        It is what the first inner update of a training step back-propagates (minus the
        objective, plus the KL penalty when ``kl_coef > 0``, averaged over the responses), at
        the current parameters, with masks drawn from ``generator``. Fresh masks come without
        stored ``l_old``, so this is the on-policy gradient: ``l_old`` is the detached value of
        the same forward pass, as in training. On-policy the BGPO and VRPO-OL gradients are the
        same estimator (the bound's gradient equals ``R_hat``'s at ``d_j = 0``; the module's
        tests check it), so for the same generator both give the same numbers; ``objective``
        is still a registry name so that estimators that differ (diffu-GRPO) can plug in.

        One forward and one ``torch.autograd.grad`` per (MC sample, micro-batch), each graph
        freed before the next: activation memory is flat in ``num_samples`` for both
        objectives (VRPO-OL's ``exp(mean_j d_j)`` couples the samples only through values,
        which are ``d_j = 0`` here). Nothing is written to ``.grad``, no Lightning hook fires,
        and DDP's reducer is not involved: ``autograd.grad`` does not run the parameters'
        gradient-accumulation nodes that DDP hooks (a plain ``backward``, even through the
        unwrapped ``self.policy``, would be taken for a pending DDP backward). Runs in the
        Trainer's precision context (autocast) and the policy's current mode.

        Args:
            rollout: ``prompt_ids``, ``prompt_mask`` and ``responses`` (see ``last_rollout``).
            advantages: ``(N,)`` one per response.
            objective: a name from ``bgpo_lightning.objectives.OBJECTIVES``.
            num_samples: n_t, the MC mask samples per response.
            generator: source of the masks, on this module's device.
            params: the parameters to differentiate; default every trainable policy parameter.
            out: flat float64 buffer of their total size to write into (zeroed first);
                allocated when None.
            timestep_sampler: overrides this module's ``timestep_sampler``.

        Returns:
            The flat float64 gradient, parameters concatenated in the order of ``params``.
        """
        check_objective(objective)
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
        n, length = rollout["responses"].shape
        sampler = check_timestep_sampler(timestep_sampler or self.timestep_sampler)
        masks = draw_masks(n, length, num_samples, sampler, generator, self.device)
        advantages = advantages.to(self.device)
        precision = self._trainer.precision_plugin.forward_context() if self._trainer else None
        with torch.enable_grad(), precision or nullcontext():
            for j in range(num_samples):
                for rows in self._micro_batches(n):
                    elbo, kl = self._forward_sample(rollout, masks, j, rows)
                    term = self._on_policy_sample_term(
                        objective, elbo, num_samples, advantages[rows]
                    )
                    loss = -term.sum() / n
                    if kl is not None:
                        loss = loss + self.kl_coef * kl.sum() / (n * num_samples)
                    grads = torch.autograd.grad(loss, params, allow_unused=True)
                    offset = 0
                    for param, grad in zip(params, grads, strict=True):
                        if grad is not None:
                            out[offset : offset + param.numel()].add_(grad.reshape(-1))
                        offset += param.numel()
        return out

    @staticmethod
    def _on_policy_sample_term(
        objective: str, elbo: torch.Tensor, num_samples: int, advantages: torch.Tensor
    ) -> torch.Tensor:
        """A per-response term whose gradient is one MC sample ``j``'s share of the objective's.

        At ``theta == theta_old`` (``l_old`` = the detached ``elbo``). BGPO is a sum over
        samples already. VRPO-OL's other samples enter ``exp(mean_k d_k)`` only through their
        values, all ``d_k = 0`` on-policy; with them held at 0 the mean is ``d_j / n_t``, so a
        one-sample call on ``l / n_t`` is exactly sample ``j``'s share (value and gradient).
        """
        old = elbo.detach()
        if objective == "bgpo":
            return bgpo_sample_term(elbo, old, advantages, num_samples)
        if objective == "vrpo_ol":
            scaled = (elbo / num_samples).unsqueeze(-1)
            return vrpo_ol_objective(scaled, scaled.detach(), advantages)
        raise ConfigError(f"policy_gradient does not support objective {objective!r} yet")
