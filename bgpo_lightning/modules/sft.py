"""Masked-diffusion supervised fine-tuning (the warm start before RL).

The LLaDA SFT loss: mask the response with a random ratio, predict the masked tokens,
weight by the ELBO weight. It is the negative of one ELBO Monte Carlo term, so it shares
:func:`~bgpo_lightning.diffusion.elbo.elbo_term` with the RL objectives.
"""

from __future__ import annotations

import torch

from bgpo_lightning.diffusion.elbo import elbo_term
from bgpo_lightning.diffusion.masking import apply_mask, check_timestep_sampler, draw_masks
from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.modules.base import DiffusionPolicyModule
from bgpo_lightning.modules.hparams import as_config, plain
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.policy import PolicySpec, encode_responses
from bgpo_lightning.tasks import Example


class DiffusionSFTModule(DiffusionPolicyModule):
    """Supervised masked-diffusion training on ``Example.target`` responses.

    Args:
        policy: where the policy comes from.
        timestep_sampler: ``iid`` (LLaDA's SFT: t ~ U(0, 1)) or ``stratified``.
        eval_sampler: sampler for validation; its ``gen_length`` is also the response length
            the targets are padded to with EOS.
        optim: optimizer settings.
        seed: seeds the mask generator.
        use_chat_template: wrap prompts in the tokenizer's chat template when it has one
            (LLaDA-Instruct has one; the embedded character tokenizer has none).
    """

    def __init__(
        self,
        policy: PolicySpec | None = None,
        timestep_sampler: str = "iid",
        eval_sampler: SamplerConfig | None = None,
        optim: OptimConfig | None = None,
        seed: int = 0,
        use_chat_template: bool = True,
    ) -> None:
        hparams = plain(dict(locals()))
        check_timestep_sampler(timestep_sampler)
        optim = as_config(OptimConfig, optim, OptimConfig(lr=1e-3))
        super().__init__(policy, eval_sampler, optim, seed, use_chat_template)
        self.save_hyperparameters(
            {k: v for k, v in hparams.items() if k not in ("self", "__class__")}
        )
        self.timestep_sampler = timestep_sampler

    @property
    def progress_label(self) -> str:
        return "SFT"

    def training_step(self, batch: list[Example], batch_idx: int) -> torch.Tensor:
        prompt_ids, prompt_mask = self.prompt_tensors([e.prompt for e in batch])
        length = self.eval_sampler.gen_length
        responses = encode_responses(self.tokenizer, [e.target for e in batch], length, self.device)
        masks = draw_masks(
            len(batch), length, 1, self.timestep_sampler, self.generator("mask"), self.device
        )
        noisy = apply_mask(
            torch.cat([prompt_ids, responses], 1), masks.mask[0], self.policy.mask_token_id
        )
        attention = torch.cat([prompt_mask, torch.ones_like(responses)], dim=1)
        logits = self.policy(noisy, attention, logits_to_keep=length)
        loss = -elbo_term(logits, responses, masks.mask[0], masks.weight[0]).mean()
        self.log(
            "train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(batch)
        )
        return loss
