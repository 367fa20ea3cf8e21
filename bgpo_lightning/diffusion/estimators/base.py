"""The interface every mask/ELBO estimator implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from bgpo_lightning.diffusion.masking import MaskSamples
from bgpo_lightning.errors import ConfigError


@dataclass(frozen=True)
class NoSettings:
    """Settings of an estimator that has none."""


class MaskEstimator:
    """Draws the masks (and their weights) from which a likelihood estimate is formed.

    An estimator decides which response (and prompt) tokens each forward pass sees as
    ``[MASK]``, the weight of each pass's masked-token log-probs, and how the passes combine
    (:class:`~bgpo_lightning.diffusion.masking.MaskSamples`). Subclasses set ``Settings`` (a
    frozen dataclass validated in ``__post_init__``), are registered by name with
    :func:`~bgpo_lightning.diffusion.estimators.registry.register_estimator`, and implement
    :meth:`_draw`.

    Attributes:
        name: the registered name, set by the register decorator.
        Settings: the settings dataclass; ``Settings()`` holds the defaults.
        settings: this instance's settings.
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type] = NoSettings

    def __init__(self, settings=None) -> None:
        if settings is None:
            settings = self.Settings()
        if not isinstance(settings, self.Settings):
            raise TypeError(
                f"estimator {self.name!r} takes {self.Settings.__name__}, "
                f"got {type(settings).__name__}"
            )
        self.settings = settings

    def check_num_samples(self, num_samples: int) -> None:
        """Raises a one-line ConfigError if this estimator cannot use ``num_samples`` forwards."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ConfigError(
                f"estimator {self.name!r} needs num_samples >= 1, got {num_samples!r}"
            )

    def draw(
        self,
        num_responses: int,
        response_length: int,
        num_samples: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        prompt_length: int = 0,
    ) -> MaskSamples:
        """Draws ``num_samples`` masks for each of ``num_responses`` responses.

        Args:
            num_responses: N, responses in the batch.
            response_length: L, tokens per response (EOS padding included: it is part of the
                fixed-length response the model generated).
            num_samples: S, forward passes per response.
            generator: the only source of randomness; must live on ``device``. Draw once per
                rollout and reuse the result for the old and the current policy.
            device: where the masks are created.
            prompt_length: P, prompt tokens; only estimators that mask the prompt use it.

        Returns:
            ``mask (S, N, L)``, ``weight (S, N)``, ``coef (S,)`` and, for estimators that
            mask the prompt, ``prompt_mask (S, N, P)``.
        """
        self.check_num_samples(num_samples)
        if response_length < 1 or num_responses < 0 or prompt_length < 0:
            raise ValueError(
                "need response_length >= 1, num_responses >= 0 and prompt_length >= 0, got "
                f"{response_length}, {num_responses}, {prompt_length}"
            )
        return self._draw(
            num_responses, response_length, num_samples, generator, device, prompt_length
        )

    def _draw(
        self,
        num_responses: int,
        response_length: int,
        num_samples: int,
        generator: torch.Generator | None,
        device: torch.device | str,
        prompt_length: int,
    ) -> MaskSamples:
        """The estimator's sampling; arguments as in :meth:`draw`, already validated."""
        raise NotImplementedError


def check_interval(
    owner: str, key: str, value: float, low: float, high: float, low_closed: bool = True
) -> None:
    """Raises a one-line ConfigError unless ``value`` is a real number in the interval.

    Args:
        owner: how the error names the settings' owner, e.g. ``estimator 'iid'``.
        key: the setting's name.
        value: its value.
        low: lower end, included when ``low_closed``.
        high: upper end, excluded.
        low_closed: whether ``low`` itself is allowed.
    """
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    above = number and (low <= value if low_closed else low < value)
    if not (above and value < high):
        interval = f"{'[' if low_closed else '('}{low}, {high})"
        raise ConfigError(f"{owner}: {key} must be in {interval}, got {value!r}")
