"""The ELBO estimate of the very forwards a gradient call runs, read off with a hook."""

from __future__ import annotations

import torch

from bgpo_lightning.diffusion.elbo import elbo_from_log_probs, token_log_probs
from bgpo_lightning.diffusion.masking import MaskSamples
from bgpo_lightning.modules.rollout import Rollout


class ForwardRecorder:
    """Records the response log-probs and masks of every policy forward while active.

    ``DiffusionRLModule.policy_gradient`` runs one forward per (mask sample, micro-batch),
    samples outermost, rows in order; the recorder walks the batch's rows the same way, so
    forward ``f`` covers the rows that follow forward ``f - 1``'s, wrapping after the last.
    It stores ``log p(y^i | y_t, x)`` at every response position (detached), and the mask it
    sees in the input, which :meth:`estimate` checks against the draw.

    Args:
        policy: the module's policy (a ``DiffusionLM``).
        rollout: the batch the gradient is taken on.
        mask_id: the ``[MASK]`` id.
    """

    def __init__(self, policy: torch.nn.Module, rollout: Rollout, mask_id: int) -> None:
        self.policy = policy
        self.responses = rollout.responses
        self.mask_id = mask_id
        self.log_probs: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        self._row = 0
        self._handle = None

    def __enter__(self) -> ForwardRecorder:
        self._handle = self.policy.register_forward_hook(self._record)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    def _record(self, module, args, output) -> None:
        ids = args[0]
        count, length = ids.shape[0], self.responses.shape[1]
        targets = self.responses[self._row : self._row + count]
        self._row = (self._row + count) % self.responses.shape[0]
        self.log_probs.append(token_log_probs(output.detach(), targets))
        self.masks.append(ids[:, -length:] == self.mask_id)

    def estimate(self, masks: MaskSamples) -> torch.Tensor:
        """``(N,)`` float64 ``sum_j coef_j l_j`` of the recorded forwards of draw ``masks``.

        Raises:
            RuntimeError: if the recorded forwards do not match the draw (wrong count or
                different masks), i.e. the redrawn masks are not the ones the call used.
        """
        shape = masks.mask.shape  # (S, N, L)
        log_probs = torch.cat(self.log_probs).view(shape)
        seen = torch.cat(self.masks).view(shape)
        if not torch.equal(seen, masks.mask):
            raise RuntimeError("the recorded forwards did not use the redrawn masks")
        terms = elbo_from_log_probs(log_probs, masks.mask, masks.weight).double()
        return masks.coef @ terms
