"""GDPO's semi-deterministic Monte Carlo (SDMC): quadrature over t, random masks."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bgpo_lightning.diffusion.estimators.base import MaskEstimator
from bgpo_lightning.diffusion.estimators.quadrature import gauss_legendre, simpson
from bgpo_lightning.diffusion.estimators.registry import register_estimator
from bgpo_lightning.diffusion.estimators.subsets import lowest_k
from bgpo_lightning.diffusion.masking import MaskSamples
from bgpo_lightning.errors import ConfigError

#: rule name -> function of the node count giving ``(t, w)`` on ``[0, 1]``; "mc" has none.
RULES = {"gauss_legendre": gauss_legendre, "simpson": simpson, "mc": None}


@dataclass(frozen=True)
class SdmcSettings:
    """Settings of the ``sdmc`` estimator.

    Attributes:
        rule: ``"gauss_legendre"`` (GDPO's choice), ``"simpson"`` or ``"mc"`` (random ``t``,
            the plain Monte Carlo baseline with the same masks).
        nodes: quadrature nodes: 1 to 5 for Gauss-Legendre, an odd count >= 3 for Simpson;
            ignored by ``"mc"``, which uses one random node per sample.
    """

    rule: str = "gauss_legendre"
    nodes: int = 3

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ConfigError(
                f"estimator 'sdmc': unknown rule {self.rule!r}; choose one of: {', '.join(RULES)}"
            )
        if self.rule != "mc":
            try:
                RULES[self.rule](self.nodes)
            except ConfigError as error:
                raise ConfigError(f"estimator 'sdmc': {error}") from None


@register_estimator("sdmc")
class SdmcEstimator(MaskEstimator):
    """Quadrature nodes ``t_n`` with weights ``w_n``; ``K = S / nodes`` random masks per node.

    ``B_hat = sum_n w_n (1/K) sum_k l(n, k)``: the integral over ``t`` is a fixed quadrature
    and only the masks are random, which removes the variance that random timesteps add.
    Draw ``j`` belongs to node ``j // K`` (``coef_j = w_n / K``) and masks exactly
    ``k = clamp(round(t_n L), 1, L)`` tokens (round half to even) chosen uniformly, with the
    discrete-form weight ``L/k``. GDPO writes ``1/t_n``; the two differ only by the rounding,
    and ``L/k`` stays finite at Simpson's ``t = 0`` node (it is the limit there). The nodes
    are shared by all responses; the masks differ per response and per draw.

    The rounding makes the integrand piecewise constant in ``t``: its integral gives ``k = 1``
    a mass ``1.5/L`` and ``k = L`` a mass ``0.5/L`` instead of ``1/L`` each, so the target is
    the ELBO plus ``(g(1) - g(L)) / (2L)`` where ``g(k)`` is the ELBO restricted to ``k``
    masked tokens. The same holds for ``"mc"``, which draws ``t ~ U(0, 1)`` per sample
    (shared by the responses) with ``coef = 1/S``. With log-probs that do not depend on the
    mask every draw is unbiased for the mean token log-prob.
    """

    Settings = SdmcSettings

    def check_num_samples(self, num_samples: int) -> None:
        super().check_num_samples(num_samples)
        rule, nodes = self.settings.rule, self.settings.nodes
        if rule != "mc" and num_samples % nodes:
            raise ConfigError(
                f"estimator 'sdmc' with {nodes} {rule} nodes needs num_samples to be a "
                f"multiple of {nodes}, got {num_samples}"
            )

    def nodes_and_coefs(
        self, num_samples: int, generator: torch.Generator | None, device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The timestep ``t`` and the coefficient of each of the ``num_samples`` draws.

        Returns:
            ``(t, coef)``, two float64 tensors of length ``num_samples`` on ``device``.
        """
        if self.settings.rule == "mc":
            t = torch.rand(num_samples, generator=generator, device=device, dtype=torch.float64)
            return t, torch.full_like(t, 1.0 / num_samples)
        t, w = RULES[self.settings.rule](self.settings.nodes)
        per_node = num_samples // self.settings.nodes
        t = t.to(device).repeat_interleave(per_node)
        return t, (w.to(device) / per_node).repeat_interleave(per_node)

    def _draw(self, num_responses, response_length, num_samples, generator, device, prompt_length):
        t, coef = self.nodes_and_coefs(num_samples, generator, device)
        k = (t * response_length).round().long().clamp(1, response_length)  # (S,)
        k = k.unsqueeze(1).expand(num_samples, num_responses)
        scores = torch.rand(
            num_samples, num_responses, response_length, generator=generator, device=device
        )
        weight = response_length / k.to(torch.float64)
        return MaskSamples(lowest_k(scores, k), weight, coef)
