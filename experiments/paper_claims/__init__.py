"""Tests the BGPO paper's claims at small scale (issue 13): every objective, the same budget.

1. ``prepare``: d1's Countdown and Sudoku splits into train / validation / test files, and a
   BPE tokenizer trained on the task texts (d1's prompts are long; characters would be
   ~900 tokens a prompt).
2. ``warm_start``: masked-diffusion SFT of a small LLaDA-shaped model on solver targets,
   stopped once greedy validation accuracy reaches a threshold (room for RL).
3. ``probe``: VRPO-OL's n_t, the largest whose peak memory stays within BGPO's at n_t = 16.
4. ``schedule``: every run of ``plan`` (learning-rate sweep, then seeds), many at once on
   one GPU, each a ``run_one`` process writing ``result.json``; resumable.
5. ``report``: ``docs/results.md``, curves and verdicts from the result files (read by
   ``results``, judged by ``claims``, drawn by ``figures``).

    python -m experiments.paper_claims --datasets ../shared/datasets
"""
