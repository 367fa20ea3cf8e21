"""The study's report: ``docs/results.md``, a curves PNG and a runs CSV per task.

Reads what the runs wrote under ``--root`` (default ``runs/paper_claims``)::

    <root>/<task>/runs/<run name>/result.json   one per finished (or failed) run
    <root>/<task>/runs/<run name>/<grad_stats_csv>  gradient statistics, when measured
    <root>/<task>/warmstart.json                the SFT warm start (optional)
    <root>/<task>/warmstart_progress.json       an unfinished warm start's parts (optional)
    <root>/<task>/recipe_search.json            warm-start recipes tried (optional)
    <root>/<task>/probe.json                    VRPO-OL's memory probe (optional)
    <root>/<task>/system.json                   machine and setting (optional)

and writes, under ``--out`` (default ``docs``)::

    results.md, results/<task>_curves.png, results/<task>_sweep.png, results/<task>_runs.csv

Every figure in the report is computed from those files; the only numbers typed in are
the two quoted Countdown figures of the contested result (in ``claims``). Partial data
(missing tasks, methods, seeds or files) gives "missing" entries; a malformed JSON file
stops the report with a one-line error naming it.

This module renders the markdown and writes the files; the other parts live beside it:
``results`` reads and summarises the result files, ``claims`` gives the verdicts,
``figures`` draws the curves and ``formatting`` holds the text helpers they share.

    python -m experiments.paper_claims.report [--root runs/paper_claims] [--out docs]
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from experiments.paper_claims import plan
from experiments.paper_claims.claims import CLAIMS, task_claims
from experiments.paper_claims.figures import plot_curves, plot_sweep
from experiments.paper_claims.formatting import one_line, pct, pct_pm
from experiments.paper_claims.recipe_report import recipe_table
from experiments.paper_claims.results import (
    ReportError,
    best_point,
    complete_sweeps,
    final_point,
    is_ok,
    load_runs,
    method_label,
    method_table,
    missing_runs,
    read_json,
    reward_ends,
    run_summary,
    twin_pairs,
    warm_point,
)

# --------------------------------------------------------------------------- markdown


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _describe_machine(record: dict) -> str:
    device = str(record.get("device") or "unknown")
    name = "CPU" if device.lower().startswith("cpu") else device
    extras = []
    if record.get("torch"):
        extras.append(f"torch {record['torch']}")
    if record.get("concurrent_runs"):
        sharing = " through CUDA MPS" if record.get("mps") else ""
        extras.append(f"{record['concurrent_runs']} runs at a time{sharing}")
    return name + (f" ({', '.join(extras)})" if extras else "")


def machine_line(system: dict | None, runs: Sequence[dict] = ()) -> str:
    """The latest session's machine (system.json), then each machine that runs recorded
    (a study can span sessions, and step times depend on how the GPU was shared)."""
    line = (
        f"Machine: {_describe_machine(system)}." if system else "Machine: unknown (no system.json)."
    )
    counts: dict[str, int] = {}
    for run in runs:
        if isinstance(run.get("machine"), dict):
            described = _describe_machine(run["machine"])
            counts[described] = counts.get(described, 0) + 1
    if counts:
        parts = [f"{described}: {n} run{'s' if n > 1 else ''}" for described, n in counts.items()]
        unrecorded = len(runs) - sum(counts.values())
        if unrecorded:
            parts.append(f"{unrecorded} earlier run{'s' if unrecorded > 1 else ''} unrecorded")
        line += " Per run: " + "; ".join(parts) + "."
    return line


def _setting_line(system: dict | None) -> str:
    system = system or {}
    lrs = ", ".join(f"{lr:g}" for lr in plan.LEARNING_RATES)
    seeds = ", ".join(str(s) for s in plan.SEEDS)
    config = f"; config `{system['rl_config']}`" if system.get("rl_config") else ""
    return (
        f"Setting: {system.get('rollout_batches', '–')} rollout batches of "
        f"{system.get('prompts_per_batch', '–')} prompts × G = {system.get('group_size', '–')}, "
        f"evaluated every {system.get('eval_every', '–')} batches; lrs swept: {lrs} "
        f"(seed {plan.SWEEP_SEED}); seeds at the chosen lr: {seeds}{config}."
    )


def _warm_start_line(warmstart: dict | None, progress: dict | None = None) -> str:
    if not warmstart and progress:  # parts trained, the threshold not reached yet
        return (
            f"Warm start: unfinished after {progress.get('sft_steps', '–')} SFT steps in "
            f"{len(progress.get('parts', []))} time-limited parts: the last validation gave "
            f"{pct(progress.get('val_accuracy'))}% against the threshold of "
            f"{pct(progress.get('threshold'))}% (`warmstart_progress.json`)."
        )
    if not warmstart:
        return "Warm start: missing (no warmstart.json)."
    params = warmstart.get("params")
    size = f"{params / 1e6:.1f}M parameters, " if isinstance(params, int | float) else ""
    made = [f"`{warmstart[k]}`" for k in ("config", "command") if warmstart.get(k)]
    config = f" ({', '.join(made)})" if made else ""
    parts = len(warmstart.get("parts", []))
    in_parts = f" in {parts} time-limited parts" if parts > 1 else ""
    stopped = {"threshold": "stopped at the validation threshold",
               "max_steps": "stopped at max_steps, below the threshold"}.get(
        warmstart.get("stopped"), "")  # fmt: skip
    stopped = f", {stopped}" if stopped else ""
    return (
        f"Warm start: {size}{warmstart.get('sft_steps', '–')} SFT steps{in_parts}{config}"
        f"{stopped}; val {pct(warmstart.get('val_accuracy'))}%, "
        f"test {pct(warmstart.get('test_accuracy'))}%."
    )


def markdown_table(rows: Sequence[dict]) -> str:
    """The main table: accuracies in percent, mean ± sample std over seeds."""
    lines = [
        "| method | chosen lr | seeds n | final test % | best-checkpoint test % "
        "| rollout reward, first → last quarter | peak GiB "
        "| s per batch (rollout + likelihood) | missing runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["lr"] is None:
            lr = "–"
        else:
            lr = f"{row['lr']:g}"
            if row["lrs_swept"] < len(plan.LEARNING_RATES):
                lr += f" ({row['lrs_swept']}/{len(plan.LEARNING_RATES)} lrs)"
        step = _num(row["step_s"], 2)
        if row["rollout_s"] is not None or row["likelihood_s"] is not None:
            step += f" ({_num(row['rollout_s'], 2)} + {_num(row['likelihood_s'], 2)})"
        lines.append(
            f"| {row['label']} | {lr} | {row['n']} | "
            f"{pct_pm(row['final_mean'], row['final_std'])} | "
            f"{pct_pm(row['best_mean'], row['best_std'])} | "
            f"{_num(row.get('reward_first'), 3)} → {_num(row.get('reward_last'), 3)} | "
            f"{_num(row['peak_gib'], 2)}"
            f"{'*' if row.get('grad_stats') else ''} | {step} | {row['missing']} |"
        )
    if any(row.get("grad_stats") for row in rows):
        lines.append(
            "\n\\* These runs also ran the gradient-statistics callback, whose own memory "
            "counts in their peak (claim 4 compares runs without it)."
        )
    return "\n".join(lines) + "\n"


def finished_runs_table(runs: Sequence[dict]) -> str:
    """One line per run: its warm-start, final and best-checkpoint accuracies and cost."""
    lines = [
        "| method | lr | seed | status | warm-start test | final val | final test "
        "| best test | s per batch | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        warm, final, best = warm_point(run), final_point(run), best_point(run)
        status = "ok" if is_ok(run) else one_line(run.get("status", "?"))
        if run.get("lr") not in plan.LEARNING_RATES:
            status += " (lr outside the grid)"
        lines.append(
            f"| {method_label(run.get('method', '?'))} | {run.get('lr', 0):g} | "
            f"{run.get('seed')} | {status} | {pct((warm or {}).get('test'))} | "
            f"{pct((final or {}).get('val'))} | {pct((final or {}).get('test'))} | "
            f"{pct((best or {}).get('test'))} | "
            f"{_num(run.get('step_s'), 2)} | {_num(run.get('peak_memory_gib'), 2)} |"
        )
    return "\n".join(lines) + "\n"


def sweep_edge_line(chosen: dict[str, float], task: str) -> str | None:
    """Which methods chose the grid's smallest or largest lr: for them the sweep does not
    bracket the best lr (None when every choice is inside the grid)."""
    grid = sorted(plan.LEARNING_RATES)
    keys = [m.key for m in plan.methods_for(task) if m.key in chosen]
    sentences = []
    for edge, word, beyond in ((grid[0], "smallest", "smaller"), (grid[-1], "largest", "larger")):
        at = [method_label(k) for k in keys if math.isclose(chosen[k], edge)]
        if at:
            sentences.append(
                f"The chosen lr is the grid's {word} ({edge:g}) for {len(at)} of {len(keys)} "
                f"methods ({'; '.join(at)}): the sweep does not bracket their best lr, and a "
                f"{beyond} one might do better."
            )
    return " ".join(sentences) or None


def twins_line(runs: Sequence[dict], probe: dict | None) -> str | None:
    """How closely BGPO n_t = 1 and VRPO-OL runs at the same lr and seed follow each other,
    when the probe ran VRPO-OL at n_t = 1 (None otherwise, or without pairs)."""
    if (probe or {}).get("vrpo_ol_n_t") != 1:
        return None
    pairs = twin_pairs(runs)
    starts = [(reward_ends(a)[0], reward_ends(b)[0]) for a, b in pairs]
    ends = []  # |final test difference| per pair
    for a, b in pairs:
        x, y = (final_point(a) or {}).get("test"), (final_point(b) or {}).get("test")
        if None not in (x, y):
            ends.append(abs(x - y))
    if not ends:
        return None
    same = sum(1 for x, y in starts if None not in (x, y) and abs(x - y) < 1e-6)
    return (
        "A check of the harness: on-policy, with one update per rollout batch, BGPO at n_t = 1 "
        f"and VRPO-OL at n_t = 1 take the same gradient. Over {len(pairs)} "
        f"pair{'s' if len(pairs) != 1 else ''} of their runs at the same lr and seed, the "
        f"rollout reward of the first quarter of the batches agrees to 1e-6 in {same}, and "
        "the final test accuracy differs by at most "
        f"{100 * max(ends):.1f} points (median {100 * statistics.median(ends):.1f})."
    )


def task_section(
    task: str,
    runs: Sequence[dict],
    chosen: dict[str, float],
    *,
    system: dict | None,
    warmstart: dict | None,
    plot_note: str | None,
    warm_start_progress: dict | None = None,
    recipes: dict | None = None,
    probe: dict | None = None,
) -> str:
    """One task's markdown: machine, setting, warm start, table, curves, missing runs."""
    rows = method_table(runs, chosen, task)
    missing = missing_runs(runs, chosen, task)
    parts = [
        f"## {task.capitalize()}",
        "",
        machine_line(system, runs),
        "",
        _setting_line(system),
        "",
        _warm_start_line(warmstart, warm_start_progress),
        "",
    ]
    if recipes:
        parts += [
            "Warm-start recipes tried side by side (`python -m "
            "experiments.paper_claims.recipe_search`, each for the same time on one shared "
            "GPU, continued from part to part; the config keeps the one that reached the "
            "threshold first). Validation accuracy at every check, or at the end of each "
            "part where the logs were not kept:",
            "",
            recipe_table(recipes),
        ]
    if not runs:
        parts += ["No runs yet: every planned run is missing.", ""]
    parts += [
        "Final test is the last evaluation; best-checkpoint test is the test accuracy at the "
        "evaluation with the highest validation accuracy (picked on validation). Mean ± sample "
        'std over seeds at each method\'s chosen lr ("–": one seed). Rollout reward: the mean '
        "reward of the training rollouts (temperature sampling) over the first and over the "
        "last quarter of the rollout batches, mean over seeds; every run sees the same prompts "
        "in the same order.",
        "",
        markdown_table(rows),
    ]
    for line in (sweep_edge_line(chosen, task), twins_line(runs, probe)):
        if line:
            parts += [line, ""]
    if missing and runs:
        parts += [
            "The study is not complete: a method's learning rate is chosen only once its "
            "whole sweep has finished. Every run finished so far (test and validation "
            "accuracy in %; best = the test accuracy at the highest validation):",
            "",
            finished_runs_table(runs),
        ]
    if plot_note is None:
        parts.append(f"![{task} curves](results/{task}_curves.png)")
    else:
        parts.append(f"Curves: not drawn ({plot_note}).")
    parts += ["", f"Every run: [results/{task}_runs.csv](results/{task}_runs.csv).", ""]
    parts += [f"### Missing ({len(missing)})", ""]
    if missing:
        parts += [f"- `{m['name']}`: {one_line(m['reason'])}" for m in missing]
    else:
        parts.append("None: every planned run finished.")
    parts.append("")
    return "\n".join(parts)


def _commands_block(task: str, runs: Sequence[dict]) -> str:
    commands = [r["command"] for r in runs if r.get("command")]
    if not commands:
        return f"- {task}: no per-run commands recorded yet."
    body = "\n".join(commands)
    return (
        f"<details><summary>{task}: the {len(commands)} per-run commands</summary>\n\n"
        f"```bash\n{body}\n```\n\n</details>"
    )


def render_markdown(tasks: dict[str, dict]) -> str:
    """The whole ``results.md`` from each task's pieces (see :func:`main`)."""
    parts = [
        "# BGPO paper claims at small scale",
        "",
        "_Generated by experiments/paper_claims/report.py; do not edit by hand._",
        "",
        "## Reproduce",
        "",
        "The whole study (it runs what is not done yet, so the same command continues it), "
        "then this report:",
        "",
        "```bash",
        "python -m experiments.paper_claims --datasets ../shared/datasets --concurrency 14 \\",
        "    --no-report",
        "python -m experiments.paper_claims.report",
        "```",
        "",
        "Each run's own command is in the task's runs CSV and below.",
        "",
        *(_commands_block(task, data["runs"]) + "\n" for task, data in tasks.items()),
    ]
    parts += [data["section"] for data in tasks.values()]
    parts += ["## Claims", ""]
    for number, title in CLAIMS:
        parts += [f"### {number}. {title}", ""]
        for task, data in tasks.items():
            if number in data["claims"]:
                verdict, sentence = data["claims"][number]
                parts.append(f"- {task.capitalize()}: **{verdict}**. {sentence}")
        parts.append("")
    parts += ["_Generated by experiments/paper_claims/report.py; do not edit by hand._", ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- outputs


#: The runs CSV's header: ``run_summary``'s keys, read off a blank run so the two never differ.
CSV_COLUMNS = tuple(run_summary({"method": "", "lr": 0.0, "seed": 0}))


def write_runs_csv(runs: Sequence[dict], chosen: dict[str, float], path: str | Path) -> Path:
    """One row per run (``CSV_COLUMNS``; accuracies as fractions)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for run in runs:
            writer.writerow(run_summary(run, chosen))
    return path


def _png(out: Path, task: str, name: str) -> Path:
    return out / "results" / f"{task}_{name}.png"


def _figure(note: str | None, out: Path, task: str, name: str) -> str | None:
    """Passes a figure's note on; a figure not drawn is removed, since an earlier
    report's file would no longer match the data."""
    if note is not None:
        _png(out, task, name).unlink(missing_ok=True)
    return note


def build_task(root: Path, task: str, out: Path) -> dict:
    """Reads one task's files, writes its CSV and PNG, returns its report pieces."""
    task_dir = root / task
    runs = load_runs(root, task)
    system = read_json(task_dir / "system.json")
    warmstart = read_json(task_dir / "warmstart.json")
    progress = read_json(task_dir / "warmstart_progress.json")
    probe = read_json(task_dir / "probe.json")
    recipes = read_json(task_dir / "recipe_search.json")
    chosen = complete_sweeps(runs, task)
    write_runs_csv(runs, chosen, out / "results" / f"{task}_runs.csv")
    plot_note = _figure(
        plot_curves(runs, chosen, task, _png(out, task, "curves")), out, task, "curves"
    )
    sweep_note = _figure(plot_sweep(runs, task, _png(out, task, "sweep")), out, task, "sweep")
    section = task_section(
        task, runs, chosen, system=system, warmstart=warmstart, plot_note=plot_note,
        warm_start_progress=progress, recipes=recipes, probe=probe,
    )  # fmt: skip
    if sweep_note is None:
        section += f"\nThe learning-rate sweep: ![{task} sweep](results/{task}_sweep.png)\n"
    return {
        "runs": runs,
        "chosen": chosen,
        "section": section,
        "claims": task_claims(runs, chosen, task, probe=probe, system=system, warmstart=warmstart),
    }


RAW_FILES = ("*/warmstart.json", "*/warmstart_progress.json", "*/probe.json", "*/system.json",
             "*/recipe_search.json",
             "*/runs/*/result.json", "*/runs/*/gradient_statistics.csv")  # fmt: skip


def archive(root: Path, dest: Path) -> list[Path]:
    """Copies the small files the report reads (no weights, no logs) from ``root`` into
    ``dest`` with the same layout, so that ``--root dest`` reproduces the report. Files of
    ``dest`` that ``root`` no longer has (an unfinished warm start's progress once it has
    finished) are removed: the archive must not report what the study does not."""
    for pattern in RAW_FILES:
        for stale in dest.glob(pattern):
            if not (root / stale.relative_to(dest)).is_file():
                stale.unlink()
    copied = []
    for pattern in RAW_FILES:
        for source in sorted(root.glob(pattern)):
            target = dest / source.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            copied.append(target)
    return copied


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("runs/paper_claims"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument(
        "--archive",
        type=Path,
        default=None,
        metavar="DIR",
        help="also copy the result files into DIR (e.g. docs/results/raw, to commit)",
    )
    args = parser.parse_args(argv)
    if args.archive is not None:
        archive(args.root, args.archive)
    try:
        tasks = {task: build_task(args.root, task, args.out) for task in plan.TASKS}
    except ReportError as error:
        raise SystemExit(f"error: {error}") from None
    path = args.out / "results.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(tasks))
    print(f"wrote {path} and {args.out / 'results'}/<task>_{{runs.csv,curves.png,sweep.png}}")
    return path


if __name__ == "__main__":
    main()
