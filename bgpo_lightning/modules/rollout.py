"""One rollout batch: prompts, the G responses sampled for each, and how they scored."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bgpo_lightning.tasks import Example


def completion_mask(responses: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """``(N, L)`` bool: tokens up to and including the first EOS (all of them without one).

    Token-level objectives (diffu-GRPO) average over these, as d1 does; the ELBO objectives
    score the whole fixed-length response, EOS padding included.
    """
    if eos_id is None:
        return torch.ones_like(responses, dtype=torch.bool)
    is_eos = responses == eos_id
    before = is_eos.long().cumsum(dim=-1) - is_eos.long()  # EOS tokens strictly before
    return before == 0


@dataclass(frozen=True)
class Rollout:
    """A rollout batch of ``N = B * G`` responses, the G of a prompt adjacent.

    Attributes:
        prompt_ids: ``(N, P)`` left-padded prompt tokens.
        prompt_mask: ``(N, P)`` attention mask of the prompts.
        responses: ``(N, L)`` sampled fixed-length responses.
        completion_mask: ``(N, L)`` bool, see :func:`completion_mask`.
        rewards: ``(N,)`` float32.
        accuracy: ``(N,)`` float32.
        advantages: ``(N,)`` the objective's per-response coefficients.
        texts: decoded responses.
        examples: the example each response answers.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    responses: torch.Tensor
    completion_mask: torch.Tensor
    rewards: torch.Tensor
    accuracy: torch.Tensor
    advantages: torch.Tensor
    texts: list[str]
    examples: list[Example]

    @property
    def num_responses(self) -> int:
        return self.responses.shape[0]

    @property
    def response_length(self) -> int:
        return self.responses.shape[1]

    def detached(self) -> Rollout:
        """The same batch with every tensor detached (what callbacks receive)."""
        return Rollout(
            self.prompt_ids.detach(),
            self.prompt_mask.detach(),
            self.responses.detach(),
            self.completion_mask.detach(),
            self.rewards.detach(),
            self.accuracy.detach(),
            self.advantages.detach(),
            self.texts,
            self.examples,
        )
