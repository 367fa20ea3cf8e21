"""The contract between the likelihood loop and an objective.

An objective says how the forwards of Monte Carlo samples become a loss. A *linear* objective
is a sum of per-sample terms (``sample_loss``), so the loop back-propagates and frees one
sample's graph at a time and memory stays flat in n_t (BGPO). A *coupled* objective needs
every sample of a micro-batch at once (``coupled_loss``: VRPO-OL's ``exp(mean_j d_j)``), and
its memory grows with n_t.

Each objective is one file: a ``Settings`` dataclass (its nested config block, validated in
``__post_init__`` with one-line :class:`~bgpo_lightning.errors.ConfigError`\\ s) and a subclass
registered with :func:`~bgpo_lightning.objectives.registry.register`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from bgpo_lightning.objectives.advantages import group_advantages
from bgpo_lightning.objectives.kl import k3_kl
from bgpo_lightning.objectives.terms import LossContext, SampleTerms


@dataclass(frozen=True)
class NoSettings:
    """For objectives without settings."""


class Objective:
    """Base class. Subclasses set the class attributes and implement one of the two losses.

    Attributes:
        name: the registry name (set by ``register``).
        coupled: True if the loss needs all samples' graphs at once (``coupled_loss``).
        fresh_draws_per_update: True if each inner update draws its own masks (d1's one seed
            per update) instead of reusing the rollout's n_t samples.
        uses_old: False for ratio-free objectives: no rollout-time values are computed.
        default_estimator: the mask estimator used when the config names none.
        estimators: the estimators this objective can use (None: any).
        Settings: the dataclass of this objective's settings.
    """

    name: ClassVar[str] = ""
    coupled: ClassVar[bool] = False
    fresh_draws_per_update: ClassVar[bool] = False
    uses_old: ClassVar[bool] = True
    default_estimator: ClassVar[str] = "stratified"
    estimators: ClassVar[tuple[str, ...] | None] = None
    Settings: ClassVar[type] = NoSettings

    def __init__(self, settings=None) -> None:
        self.settings = settings if settings is not None else self.Settings()

    # ---- what the loop asks before the forwards ------------------------------------------
    @property
    def kl_coef(self) -> float:
        """Weight of a k3 KL penalty to the frozen reference (0: no reference is built)."""
        return float(getattr(self.settings, "kl_coef", 0.0))

    def advantages(self, rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """Per-response coefficients from rewards; default GRPO's ``(r - mean) / std``."""
        normalize = bool(getattr(self.settings, "normalize_std", True))
        return group_advantages(rewards, group_size, normalize_std=normalize)

    def num_samples(self, num_mc_samples: int, num_inner_updates: int) -> int:
        """How many mask samples to draw per rollout batch.

        n_t, reused by every inner update; ``n_t * mu`` with ``fresh_draws_per_update``.
        """
        if self.fresh_draws_per_update:
            return num_mc_samples * num_inner_updates
        return num_mc_samples

    def samples_in_update(
        self, inner: int, num_samples: int, num_inner_updates: int
    ) -> Sequence[int]:
        """The samples inner update ``inner`` uses: all of them, or its own slice."""
        if not self.fresh_draws_per_update:
            return range(num_samples)
        per_update = num_samples // num_inner_updates
        if not 0 <= inner < num_inner_updates or per_update < 1:
            raise ValueError(f"inner update {inner} has no mask sample (drawn: {num_samples})")
        return range(inner * per_update, (inner + 1) * per_update)

    def on_policy_linear(self) -> Objective:
        """A linear objective with this one's gradient at ``theta == theta_old``.

        Coupled objectives whose samples interact only through values that are 0 on-policy
        (VRPO-OL's and GDPO's ``exp(sum_j c_j d_j)``) return BGPO here, so gradient
        measurements at many samples stay memory-flat. Default: this objective itself.
        """
        return self

    # ---- the loss, per micro-batch, already divided by the batch's N ------------------------
    def sample_loss(
        self, j: int, new: SampleTerms, old: SampleTerms, ctx: LossContext
    ) -> torch.Tensor:
        """Linear objectives: sample ``j``'s share of the loss (a scalar)."""
        raise NotImplementedError(f"{type(self).__name__} is coupled: use coupled_loss")

    def coupled_loss(
        self,
        samples: Sequence[int],
        new: Sequence[SampleTerms],
        old: Sequence[SampleTerms],
        ctx: LossContext,
    ) -> torch.Tensor:
        """Coupled objectives: the loss of ``samples`` together (a scalar)."""
        raise NotImplementedError(f"{type(self).__name__} is linear: use sample_loss")

    # ---- shared pieces ----------------------------------------------------------------------
    def elbo_kl(self, j: int, new: SampleTerms, ctx: LossContext) -> torch.Tensor:
        """The KL penalty as sample ``j``'s own term: memory stays flat in n_t.

        ``kl_coef * coef_j * k3`` averaged over the sample's masked tokens, summed over the
        micro-batch, divided by N; zero when ``kl_coef == 0``.
        """
        if self.kl_coef == 0 or new.ref_log_probs is None:
            return new.elbo.new_zeros(())
        kl = k3_kl(new.log_probs, new.ref_log_probs, new.mask)
        coef = ctx.coef[j].to(kl.dtype)
        return self.kl_coef * coef * kl.sum() / ctx.num_responses
