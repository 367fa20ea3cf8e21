"""Benchmark data for the tasks, downloaded through ``datasets`` and written as JSON lines.

    python -m experiments.data --out data/                  # everything
    python -m experiments.data --only gsm8k math500         # some datasets
    python -m experiments.data --force                      # rewrite existing files

Writes ``<out>/<dataset>/<split>.jsonl`` in the schemas of ``../shared/datasets`` (see its
README), which the task loaders read:

gsm8k/train.jsonl, test.jsonl (7473, 1319 rows): ``{"question", "answer"}``, the answer the
    worked solution ending in ``#### <n>``. Hub ``openai/gsm8k``, config ``main``.
math/train.jsonl (7500): ``{"problem", "answer"}``, the answer the last ``\\boxed{}`` of the
    solution (``null`` without one). Hub ``DigitalLearningGmbH/MATH-lighteval``, config
    ``default``, split ``train``: the MATH train split (Hendrycks et al.) with ``problem`` and
    ``solution``. ``../shared/datasets/math`` has 7474 rows from a derivative of that split.
math500/test.jsonl (500): ``{"problem", "answer"}``. Hub ``HuggingFaceH4/MATH-500``, ``test``.
countdown/train.jsonl (20000): ``{"numbers": [int, ...], "target": int}``, 3 or 4 numbers.
    The first 20000 rows of Hub ``Jiayi-Pan/Countdown-Tasks-3to4`` (its only split, ``train``,
    490364 rows, columns ``nums`` and ``target``). d1 trains on that dataset's 3-number rows.
countdown/test.jsonl (256): 3 numbers. d1's test file, which is not on the Hub:
    ``dataset/countdown_cd3_test.jsonl`` of github.com/dllm-reasoning/d1 (``{"input":
    "30,100,93", "output": "23"}``), loaded by ``load_dataset("json", data_files=<raw URL>)``.
sudoku/train.jsonl (20000): ``{"puzzle": 16 digits, 0 empty, "solution": 16 digits}``, 4x4.
    The first 20000 rows of d1's ``dataset/4x4_sudoku_unique_puzzles.csv`` (columns
    ``Puzzle``, ``Solution``; d1 trains on the whole file), through
    ``load_dataset("csv", data_files=<raw URL>)``.
sudoku/test.jsonl (500): d1's ``dataset/4x4_test_sudoku.csv``, the same way.
mbpp/train, validation, test, prompt.jsonl (374, 90, 500, 10): ``{"text", "code", "task_id",
    "test_setup_code", "test_list", "challenge_test_list"}``. Hub
    ``google-research-datasets/mbpp``, config ``full``, same split names.

The d1 files come from raw.githubusercontent.com at a pinned commit (see
:mod:`experiments.data.catalog`). An existing file is kept unless ``--force``: files are
written to a temporary name and renamed, so an interrupted run leaves no partial file.

Exit status 2, with one ``error:`` line on stderr naming the dataset, when ``datasets`` is
not installed or a source cannot be had (offline, connection error, ``HF_HUB_OFFLINE``
without a cached copy); 1 when a source row does not fit its schema (the line names
dataset, split, row index and key).
"""
