"""Estimator study: noise and bias of each mask estimator's ELBO and BGPO gradient.

``python -m experiments.estimator_study`` takes one fixed rollout batch of the Sudoku SFT warm
start, measures every estimator of :mod:`bgpo_lightning.diffusion.estimators` at several
forward budgets, and writes ``docs/estimators.md`` with its table, figure, CSV and ``run.json``.

Modules, one concept each:

* :mod:`.grid`: which estimators, with which settings, at which budgets (and the n/a cells);
* :mod:`.batch`: the warm-started module and its fixed rollout batches;
* :mod:`.exact`: the exact ELBO of short responses by enumerating every mask;
* :mod:`.recorder`: the per-token log-probs of the forwards a gradient call runs;
* :mod:`.measure`: the repeated draws and their statistics, one row per cell;
* :mod:`.report`: CSV, figure, tables and the generated verdict paragraph;
* :mod:`.doc`: the Markdown page.
"""
