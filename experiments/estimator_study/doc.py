"""The Markdown page ``docs/estimators.md`` and its files, written from the measured rows."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from experiments.estimator_study.report import figure, markdown_table, write_csv
from experiments.estimator_study.verdict import verdict

# Hand-written reading of the results, and caveats: no numbers here (a test checks), the
# generated text carries those.
INTERPRETATION = """\
On the main batch the two estimators that fix how many tokens each forward masks (`stratified`,
and SDMC at its quadrature nodes) have the lowest ELBO spread at every budget they can spend;
their weight `L/k` is bounded by the response length. The two that draw a timestep and weigh by
one over it (`iid`, and `complementary` pairs) are heavy-tailed: a rare draw with a tiny `t`
masks a single token and multiplies it by up to one over `min_t`. Such draws show up as isolated
spikes in both the ELBO variance and the gradient bias, and a few repeats estimate their spread
poorly. Pairing each mask with its complement lowers `iid`'s spread at most budgets, and on the
short responses of the exact batch it sometimes beats the fixed-count estimators, but it keeps
the one-over-`t` weights and their spikes.

SDMC's fixed nodes buy a somewhat lower spread than `stratified` on the main batch (not on the
short responses of the exact batch), at a price:
its mean is a quadrature approximation of the integral over `t`, not the ELBO, and more masks
per node do not reduce that error. The exact batch shows this bias wherever its noise is small
enough; at the budgets measured, its effect on the gradient is hard to tell from the Monte Carlo
noise. `stratified` is unbiased, close to the lowest spread at every budget, and gives the best
gradients at the largest budgets, which supports it as BGPO's default.

d1's one-step estimator has the smallest spread of all (only the prompt mask is random), and with
very few forwards its single draws point closer to the ELBO gradient than any single ELBO draw
does. But it estimates another quantity: its bias against the exact ELBO is large and does not
move with the budget, its gradient bias stays flat, and a handful of forwards per response are
enough for the ELBO estimators to overtake it in cosine.
"""

CAVEATS = """\
- The masks come from seeded generators and the forwards are deterministic on this CPU:
  running the command again gave the same rows, only the timings differ.
- The golden gradient is itself a Monte Carlo estimate, so the gradient bias column has a floor:
  for an unbiased estimator it is the Monte Carlo error left in the mean of the repeats plus the
  golden's own error, not a systematic bias. Compare estimators at equal budgets.
- The exact ELBO needs every mask of a response, which the main batch's responses are too long
  for on this CPU (see the estimate above); the ELBO bias is therefore measured on a second
  batch of shorter responses from the same policy and prompts, whose variances are in the
  table next to the main batch's.
- d1's one-step estimator (`one_step`) scores the response with every token masked and a
  lightly masked prompt: it estimates a different quantity than the ELBO, so its bias against
  the exact ELBO and against the ELBO gradient is large and does not shrink with the budget.
  Its variance and cosine are reported anyway.
- SDMC evaluates the integrand over `t` only at its Gauss-Legendre nodes, each rounded to a whole
  number of masked tokens (`bgpo_lightning/diffusion/estimators/sdmc.py`): its target is the
  quadrature sum, which differs from the ELBO by an amount that no number of masks per node
  removes. `iid` clips `t` below at its `min_t`, a much smaller effect.
- SDMC with `m` nodes spends `K = budget / m` masks per node, so it exists only where `m`
  divides the budget; complementary pairs need an even budget. Those cells are n/a: no budget
  was rounded to fit. The grid holds multiples of three besides powers of two so that SDMC with
  three nodes has cells at all.
"""


def _load(machine: dict) -> str:
    """The one-minute load average at the start and the end of the run."""
    start, end = machine.get("load_average_at_start"), machine.get("load_average_at_end")
    if start is None or end is None:
        return "not recorded"
    return f"{start[0]:.1f} at the start and {end[0]:.1f} at the end"


def _hours(main: dict, short: dict) -> float:
    """Hours the exact ELBO of the main batch would take at the exact batch's forward rate."""
    rate = short["forwards"] / max(short["seconds"], 1e-9)
    return main["distinct"] * 2 ** main["response_length"] / rate / 3600


def _setup(info: dict) -> str:
    """The "what was measured" bullets, one line each, numbers from ``info``."""
    s, main, short, policy = (info[k] for k in ("settings", "main_batch", "exact_batch", "policy"))
    bullets = [
        f"Policy: {policy['description']}; {info['num_params']} parameters, float32, in "
        "training mode as in a BGPO step (the model has no dropout).",
        f"Main batch: {main['prompts']} Sudoku prompts x {main['group_size']} responses of "
        f"{main['response_length']} tokens, sampled at temperature {main['temperature']} with "
        f"seed {main['seed']}; mean reward {main['mean_reward']:.3f}; {main['tied_groups']} of "
        f"{main['prompts']} groups have all rewards tied; {main['nonzero_advantages']} of "
        f"{main['responses']} advantages exceed 0.01 in magnitude (BGPO's group normalisation).",
        f"Exact batch: the same prompts, {short['group_size']} responses each of "
        f"{short['response_length']} tokens (one-block sampler, temperature "
        f"{short['temperature']}, seed {short['seed']}). Its {short['distinct']} distinct "
        f"responses were run under every one of their {short['masks']} non-empty masks: "
        f"{short['forwards']} no-grad forwards in {short['seconds']:.0f} s give the exact ELBO. "
        "Estimates on this batch are read off that table of forwards, except `one_step`'s, "
        "which masks the prompt and runs its own forwards. Enumerating the main batch instead "
        f"({main['distinct']} distinct responses x {2 ** main['response_length'] - 1} masks) "
        f"would take about {_hours(main, short):.1f} hours at the same rate.",
        f"Estimators (label: registry name, settings): {s['estimators']}.",
        f"Budgets (forwards per response): {', '.join(map(str, s['budgets']))}; "
        f"R = {s['repeats']} fresh mask draws per cell, deterministic seeds (base seed "
        f"{s['seed']}).",
        "ELBO variance: the variance over the R draws of each response's estimate "
        "`sum_j coef_j l_j`, averaged over the responses. On the main batch it comes from the "
        "very forwards of the gradient call (a forward hook; the masks are redrawn from the "
        "same seed and checked against the forwards' inputs). ELBO bias: the mean over the "
        "responses of (mean over R of the estimate minus the exact ELBO), with its standard "
        "error.",
        "Gradient: `DiffusionRLModule.policy_gradient(rollout, budget, generator, "
        'objective="bgpo", estimator=..., estimator_settings=...)`, the first inner update\'s '
        "on-policy gradient through the training loop, `-(1/N) sum_n A_n grad B_hat_n`. "
        "Cosine: the mean over the R draws of the cosine to the golden gradient. Bias: "
        "`||mean_R g - g_golden|| / ||g_golden||` (`RunningMoments`). Golden: stratified with "
        f"{s['golden_budget']} forwards per response, from its own seed stream.",
    ]
    return "\n".join(f"- {bullet}" for bullet in bullets)


def render(rows: Sequence[dict], info: dict, figure_path: str, csv_path: str) -> str:
    """The page's Markdown."""
    machine = info["machine"]
    short = info["exact_batch"]["response_length"]
    return f"""\
# Mask estimators: ELBO and gradient noise on one rollout batch

Every number, the table and the figure on this page were written by

    {info["command"]}

- Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["threads"]} torch threads; \
torch {info["torch"]}, Python {info["python"]}.
- Wall time: {info["seconds"]:.0f} s, started {info["date"]}. The one-minute load average, this \
run included, was {_load(machine)}: other jobs share this machine's cores and stretch the time.
- Raw rows: [{csv_path}]({csv_path}); settings and timings: \
[run.json]({os.path.dirname(csv_path)}/run.json).

## What was measured

{_setup(info)}

## Results

{markdown_table(rows, short)}

![ELBO variance, gradient bias and cosine against the budget]({figure_path})

## Which estimator wins where (generated from the table)

{verdict(rows)}

## Interpretation

{INTERPRETATION}
## Caveats

{CAVEATS}"""


def write_outputs(rows: Sequence[dict], info: dict, doc: Path, directory: Path) -> None:
    """``estimators.csv``, ``estimators.png`` and ``run.json`` in ``directory``, then ``doc``."""
    directory.mkdir(parents=True, exist_ok=True)
    write_csv(directory / "estimators.csv", rows)
    s = info["settings"]
    title = (
        f"{info['main_batch']['responses']} responses, R = {s['repeats']}, "
        f"golden: stratified x {s['golden_budget']}"
    )
    figure(rows, title).savefig(directory / "estimators.png", dpi=100)
    (directory / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    relative = Path(os.path.relpath(directory, doc.parent))
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(
        render(rows, info, str(relative / "estimators.png"), str(relative / "estimators.csv"))
    )
