"""Vectorised, semi-autoregressive LLaDA-style sampler for masked diffusion language models.

The response starts fully masked and is split into blocks that are decoded left to right. Within a
block, every step asks the model for logits over the whole sequence, proposes a token for every
position of the block, and commits the proposals at the most confident still-masked positions; the
number committed per step follows a fixed schedule so the block is complete after its last step.
With a confidence threshold, a step also commits every token above it, and a block ends as soon as
it has no mask left.

This module is the exact path: the full sequence is run at every step. ``config.cache`` hands the
loop to ``cached_decoding``, which reuses keys and values of the positions outside the block.

All work is batched over rows (no Python loop over rows), so B prompts x G responses can be
flattened into one batch by the caller.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

if TYPE_CHECKING:
    from bgpo_lightning.diffusion.cached_decoding import BlockModel

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
"""Maps token ids ``(B, L)`` (long) to logits ``(B, L, V)`` of any floating dtype."""

WindowLogitsFn = Callable[[torch.Tensor, slice], torch.Tensor]
"""Maps token ids ``(B, L)`` and a window of positions to the window's logits ``(B, W, V)``."""

Remasking = Literal["low_confidence", "random"]
REMASKING_MODES: tuple[str, ...] = ("low_confidence", "random")

CacheMode = Literal["none", "prefix", "dual"]
CACHE_MODES: tuple[str, ...] = ("none", "prefix", "dual")

Precision = Literal["float64", "float32"]
PRECISIONS: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}


@dataclass(frozen=True)
class SamplerConfig:
    """Settings of the semi-autoregressive sampler.

    Attributes:
        gen_length: Number of response tokens to generate.
        block_length: Length of each block; blocks are decoded left to right.
        steps: Total denoising steps over all blocks, split evenly across blocks.
        temperature: Sampling temperature; 0 means greedy (argmax) decoding.
        remasking: How to rank masked positions for unmasking: ``"low_confidence"`` commits the
            tokens the model is most sure of, ``"random"`` commits random positions.
        threshold: Confidence-threshold parallel decoding: each step also commits every masked
            token of the block whose confidence exceeds it, so a step commits
            ``max(#above threshold, fixed schedule's count)`` tokens and a block ends early once
            no row has a mask left in it (at most ``steps_per_block`` steps). ``None`` keeps the
            fixed schedule; a value above 1 commits exactly what the fixed schedule commits.
        cache: ``"none"`` runs the full sequence every step (exact). ``"prefix"`` runs the full
            sequence at each block start (and refresh), caches the keys/values before the
            block, and then runs only the block and what follows it. ``"dual"`` also caches the
            keys/values after the block and runs only the block. Cached modes approximate the
            exact sampler and need a model that supports them (``generate``'s ``block_model``).
        cache_refresh_steps: With a cache, also rerun the full sequence every this many steps
            within a block (it is always rerun at a block's first step); ``None`` never does.
        cuda_graph: With ``cache="dual"``, capture the block step once per rollout as a CUDA
            graph and replay it (``policy.graphed_dual_cache``): the same tokens, without the
            per-step cost of launching each kernel from Python. Off CUDA the same step runs
            eagerly.
        precision: dtype of the block's logits, the Gumbel noise and the confidences.
            ``"float64"`` is LLaDA's (and the reference sampler's); ``"float32"`` halves the
            vocabulary-sized work of each step, which a cached step at 1B is dominated by. It
            is another random stream (other tokens for a seed), and its Gumbel noise is
            bounded by float32's uniforms (about 17 instead of 37), which changes a
            proposal only where a token would win by a noise larger than that.
        compile: Run the model's forward through ``torch.compile`` while sampling
            (``policy.compiled_forward``; the training forward stays eager). It compiles once
            per input shape, so the first rollouts pay for it. The same distribution up to
            the rounding of fused kernels (docs/benchmarks.md has its speed). This module's
            ``generate`` takes a model function and ignores it:
            ``DiffusionPolicyModule.sample`` applies it.
        merge_lora: With a LoRA policy, sample with the adapter merged into stand-in weights
            (``policy.merged_lora``) instead of running its two extra matrix products in
            every projection. The base weights are not written; the merged copy costs the
            adapted weights' memory while sampling. The same policy up to rounding, with the
            adapter's dropout off. Applied by ``DiffusionPolicyModule.sample`` too.
        gather_weights: Under FSDP2, all-gather the policy's weights once per rollout and
            keep them for all its forwards (``modules.sharding.gathered_weights``), instead
            of gathering every decoder layer at every forward. Costs the full weights on each
            GPU while sampling; a no-op without FSDP2. Applied by
            ``DiffusionPolicyModule.sample``. ``cuda_graph`` under FSDP2 needs it: a replayed
            graph runs none of FSDP2's all-gathers.
    """

    gen_length: int = 16
    block_length: int = 8
    steps: int = 8
    temperature: float = 0.0
    remasking: Remasking = "low_confidence"
    threshold: float | None = None
    cache: CacheMode = "none"
    cache_refresh_steps: int | None = None
    cuda_graph: bool = False
    precision: Precision = "float64"
    compile: bool = False
    merge_lora: bool = False
    gather_weights: bool = False

    def __post_init__(self) -> None:
        if self.gen_length <= 0:
            raise ValueError(f"gen_length must be positive, got {self.gen_length}")
        if self.block_length <= 0:
            raise ValueError(f"block_length must be positive, got {self.block_length}")
        if self.gen_length % self.block_length != 0:
            raise ValueError(
                f"gen_length ({self.gen_length}) must be divisible by "
                f"block_length ({self.block_length})"
            )
        if self.steps < self.num_blocks:
            raise ValueError(
                f"steps ({self.steps}) must be at least the number of blocks ({self.num_blocks})"
            )
        if self.steps % self.num_blocks != 0:
            raise ValueError(
                f"steps ({self.steps}) must be divisible by the number of blocks "
                f"({self.num_blocks})"
            )
        # `not >= 0` also rejects NaN.
        if not self.temperature >= 0 or self.temperature == float("inf"):
            raise ValueError(f"temperature must be finite and >= 0, got {self.temperature}")
        if self.remasking not in REMASKING_MODES:
            raise ValueError(f"remasking must be one of {REMASKING_MODES}, got {self.remasking!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {tuple(PRECISIONS)}, got {self.precision!r}"
            )
        self._check_fast_decoding()

    def _check_fast_decoding(self) -> None:
        """Validates the threshold and cache settings."""
        if self.threshold is not None:
            if not self.threshold > 0:
                raise ValueError(f"threshold must be > 0 or None, got {self.threshold}")
            if self.remasking != "low_confidence":
                raise ValueError("threshold needs remasking='low_confidence' (it thresholds p)")
            # More steps than tokens would only add empty steps; with them, stopping early
            # would shift the random stream and tau > 1 would no longer equal the fixed schedule.
            if self.steps_per_block > self.block_length:
                raise ValueError(
                    f"threshold needs steps per block ({self.steps_per_block}) <= "
                    f"block_length ({self.block_length})"
                )
        if self.cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {self.cache!r}")
        if self.cuda_graph and self.cache != "dual":
            raise ValueError("cuda_graph needs cache='dual' (its steps have fixed shapes)")
        if self.cache_refresh_steps is not None:
            if self.cache == "none":
                raise ValueError("cache_refresh_steps needs cache='prefix' or 'dual'")
            if self.cache_refresh_steps < 1:
                raise ValueError(
                    f"cache_refresh_steps must be >= 1 or None, got {self.cache_refresh_steps}"
                )

    @property
    def dtype(self) -> torch.dtype:
        """The torch dtype of ``precision``."""
        return PRECISIONS[self.precision]

    @property
    def num_blocks(self) -> int:
        """Number of blocks the response is split into."""
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        """Denoising steps spent on each block."""
        return self.steps // self.num_blocks


def unmask_schedule(num_masked: torch.Tensor, steps: int) -> torch.Tensor:
    """Splits each row's masked-token count evenly over ``steps`` steps.

    The remainder goes one token each to the first steps, so the counts of a row sum to its
    ``num_masked`` entry.

    Args:
        num_masked: ``(B,)`` integer count of masked tokens per row.
        steps: Number of steps to spread them over.

    Returns:
        ``(B, steps)`` long tensor: tokens to unmask per row at each step.
    """
    num_masked = num_masked.long()
    base = num_masked // steps
    remainder = num_masked % steps
    step_index = torch.arange(steps, device=num_masked.device)
    return base[:, None] + (step_index[None, :] < remainder[:, None]).long()


def select_top_k(confidence: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Marks the ``k[row]`` highest-confidence entries of each row.

    Ties are broken towards the lower index (stable sort), so the result is deterministic.
    Entries with ``-inf`` confidence are never selected, even if ``k`` asks for more.

    Args:
        confidence: ``(B, N)`` floating scores.
        k: ``(B,)`` integer number of entries to select per row.

    Returns:
        ``(B, N)`` bool tensor, True at the selected entries.
    """
    order = torch.sort(confidence, dim=-1, descending=True, stable=True).indices
    positions = torch.arange(confidence.shape[-1], device=confidence.device)
    ranks = torch.empty_like(order).scatter_(-1, order, positions.expand_as(order))
    return (ranks < k[:, None]) & (confidence > float("-inf"))


def _propose_tokens(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Greedy or Gumbel-max sample of one token per position from ``logits`` (float64, or
    float32 with ``SamplerConfig.precision``), the noise in the logits' dtype."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    # Gumbel-max: argmax(l / T + G) ~ softmax(l / T); LLaDA uses float64, so that low-precision
    # noise does not collapse distinct tokens.
    noise = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    # In place: at LLaDA's vocabulary every (B, block, V) float64 temporary costs gigabytes.
    noise.log_().neg_().log_().neg_()  # Gumbel(0, 1) = -log(-log(u))
    return noise.add_(logits / temperature).argmax(dim=-1)


def _confidence(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    remasking: str,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Scores each proposed token: its model probability, or a uniform random number."""
    if remasking == "random":
        return torch.rand(
            tokens.shape, generator=generator, device=tokens.device, dtype=logits.dtype
        )
    # p(token) = exp(logit - logsumexp) avoids materialising a second (B, L, V) softmax tensor.
    chosen = logits.gather(-1, tokens[..., None]).squeeze(-1)
    return (chosen - torch.logsumexp(logits, dim=-1)).exp()


def check_sampler_inputs(
    prompt_ids: torch.Tensor, mask_id: int, generator: torch.Generator | None
) -> None:
    """Raises ``ValueError`` for inputs that ``generate`` cannot handle."""
    if prompt_ids.ndim != 2:
        raise ValueError(f"prompt_ids must be (B, P), got shape {tuple(prompt_ids.shape)}")
    if prompt_ids.is_floating_point() or prompt_ids.is_complex() or prompt_ids.dtype == torch.bool:
        raise ValueError(f"prompt_ids must hold integer token ids, got {prompt_ids.dtype}")
    if mask_id < 0:
        raise ValueError(f"mask_id must be a valid token id, got {mask_id}")
    if generator is not None and generator.device.type != prompt_ids.device.type:
        raise ValueError(
            f"generator is on {generator.device} but prompt_ids is on {prompt_ids.device}"
        )


def block_logits(
    logits: torch.Tensor,
    x: torch.Tensor,
    mask_id: int,
    start: int,
    end: int,
    windowed: bool = False,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Validates ``logits`` and returns the block's slice in ``dtype`` (the sampler's
    precision), with the mask token banned.

    The mask token is never a valid proposal: committing it would leave the position masked and
    break the unmasking schedule.

    Args:
        logits: ``(B, L, V)`` for the whole sequence, or ``(B, end - start, V)`` if ``windowed``.
        x: Current ids ``(B, L)``.
        mask_id: Id of the mask token.
        start: First position of the block.
        end: One past its last position.
        windowed: ``logits`` holds the block's positions only.
        dtype: float64 (LLaDA's) or float32 (``SamplerConfig.precision``).
    """
    width = end - start if windowed else x.shape[1]
    if logits.ndim != 3 or logits.shape[:2] != (x.shape[0], width):
        raise ValueError(
            f"logits_fn must return (B, {'W' if windowed else 'L'}, V) = "
            f"({x.shape[0]}, {width}, V), got {tuple(logits.shape)}"
        )
    if mask_id >= logits.shape[-1]:
        raise ValueError(f"mask_id {mask_id} is outside the vocabulary of {logits.shape[-1]}")
    block = logits if windowed else logits[:, start:end]
    # copy=True: never write into the caller's logits (`.to` is a no-op on input of `dtype`).
    block = block.to(dtype, copy=True)
    block[..., mask_id] = float("-inf")
    return block


def _commit_step(
    x: torch.Tensor,
    logits: torch.Tensor,
    mask_id: int,
    start: int,
    end: int,
    count: torch.Tensor,
    config: SamplerConfig,
    generator: torch.Generator | None,
) -> None:
    """One denoising step: proposes tokens for the block and commits some of them in ``x``.

    Args:
        x: Current ids ``(B, L)``, updated in place.
        logits: The block's logits ``(B, end - start, V)`` (see ``block_logits``).
        mask_id: Id of the mask token.
        start: First position of the block.
        end: One past its last position.
        count: ``(B,)`` tokens the fixed schedule commits at this step.
        config: Sampler settings (temperature, remasking, threshold).
        generator: Source of randomness.
    """
    tokens = _propose_tokens(logits, config.temperature, generator)
    confidence = _confidence(logits, tokens, config.remasking, generator)
    # Only masked positions of the current block compete; earlier blocks are done and later
    # blocks wait their turn (they lie outside the slice).
    still_masked = x[:, start:end] == mask_id
    confidence = confidence.masked_fill(~still_masked, float("-inf"))
    if config.threshold is not None:
        # Never fewer than the fixed schedule, so tau > 1 (p <= 1) is exactly the fixed schedule.
        count = torch.maximum(count, (confidence > config.threshold).sum(-1))
    commit = select_top_k(confidence, count)
    x[:, start:end] = torch.where(commit, tokens.to(x.dtype), x[:, start:end])


def _block_done(x: torch.Tensor, mask_id: int, start: int, end: int) -> bool:
    """Whether no row has a mask left in the block (the step loop's one host sync per step)."""
    return not bool((x[:, start:end] == mask_id).any())


@torch.no_grad()
def generate(
    logits_fn: LogitsFn,
    prompt_ids: torch.Tensor,
    mask_id: int,
    config: SamplerConfig,
    generator: torch.Generator | None = None,
    windowed: bool = False,
    block_model: "BlockModel | None" = None,
) -> torch.Tensor:
    """Generates ``config.gen_length`` response tokens after each prompt.

    Random draws per step, in order: Gumbel noise of shape ``(B, block_length, V)`` when
    ``temperature > 0``, then uniform confidences of shape ``(B, block_length)`` when
    ``remasking == "random"``, both in ``config.precision``. ``reference_generate`` draws the
    same in float64, so both agree per seed at the default precision.

    With ``config.threshold`` set, a block stops as soon as it has no mask left: checking that
    costs one host-device synchronisation per step; without a threshold there is none.

    Args:
        logits_fn: Bidirectional model, ``(B, L)`` ids -> ``(B, L, V)`` logits, called once per
            step on the full sequence (no cache). Prompts of different lengths are the caller's
            business (e.g. left padding plus an attention mask inside ``logits_fn``).
        prompt_ids: ``(B, P)`` integer prompt ids; must not contain ``mask_id``.
        mask_id: Id of the mask token; it is never generated.
        config: Sampler settings.
        generator: Source of randomness; must be on ``prompt_ids.device``. Unused when
            ``temperature == 0`` and ``remasking == "low_confidence"``.
        windowed: ``logits_fn`` is a :data:`WindowLogitsFn`, called as ``logits_fn(x, block)``
            and returning the current block's logits only: the model then skips the output
            projection of every other position (at LLaDA's vocabulary, a large share of a
            step's FLOPs). The results are the same as with full logits.
        block_model: What a cached mode (``config.cache != "none"``) runs instead of
            ``logits_fn`` (see ``bgpo_lightning.diffusion.cached_decoding``); ignored otherwise.

    Returns:
        ``(B, P + gen_length)`` tensor: the prompt followed by the generated response.
    """
    if config.cache != "none":
        # Imported here: the cached loop builds on this module's step functions.
        from bgpo_lightning.diffusion.cached_decoding import cached_generate

        if block_model is None:
            raise ValueError(f"cache={config.cache!r} needs a block_model")
        return cached_generate(block_model, prompt_ids, mask_id, config, generator)

    def full_sequence(x: torch.Tensor, start: int, end: int, step: int) -> torch.Tensor:
        raw = logits_fn(x, slice(start, end)) if windowed else logits_fn(x)
        return block_logits(raw, x, mask_id, start, end, windowed, config.dtype)

    return denoise_blocks(prompt_ids, mask_id, config, generator, full_sequence)


BlockStepLogits = Callable[[torch.Tensor, int, int, int], torch.Tensor]
"""``(ids (B, L), block start, block end, step within the block)`` -> the block's logits
``(B, end - start, V)`` in the sampler's precision (see ``block_logits``)."""


def denoise_blocks(
    prompt_ids: torch.Tensor,
    mask_id: int,
    config: SamplerConfig,
    generator: torch.Generator | None,
    block_step_logits: BlockStepLogits,
) -> torch.Tensor:
    """The step loop both the exact and the cached paths run: blocks left to right, each step
    asks ``block_step_logits`` for the block's logits and commits tokens (``_commit_step``).

    Returns:
        ``(B, P + gen_length)`` tensor: the prompt followed by the generated response.
    """
    check_sampler_inputs(prompt_ids, mask_id, generator)
    batch, prompt_len = prompt_ids.shape
    x = prompt_ids.new_full((batch, prompt_len + config.gen_length), mask_id)
    x[:, :prompt_len] = prompt_ids

    for block in range(config.num_blocks):
        start = prompt_len + block * config.block_length
        end = start + config.block_length
        schedule = unmask_schedule((x[:, start:end] == mask_id).sum(-1), config.steps_per_block)
        for step in range(config.steps_per_block):
            logits = block_step_logits(x, start, end, step)
            _commit_step(x, logits, mask_id, start, end, schedule[:, step], config, generator)
            if config.threshold is not None and _block_done(x, mask_id, start, end):
                break
    return x
