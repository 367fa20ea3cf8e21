"""The benchmark's outputs: CSV, a markdown table and a PNG plot."""

from __future__ import annotations

import csv
import math
from pathlib import Path

COLUMNS = [
    "case",
    "objective",
    "separate_old_pass",
    "n_t",
    "variant",
    "trainable_params",
    "status",
    "peak_gib",
    "likelihood_s",
    "likelihood_s_per_sample",
    "mfu",
    "rollout_s",
    "step_s",
    "wall_s",
]


# Read back as floats (blank: NaN); the others stay text, but for the integer n_t.
FLOAT_COLUMNS = (
    "peak_gib",
    "likelihood_s",
    "likelihood_s_per_sample",
    "mfu",
    "rollout_s",
    "step_s",
)


def write_csv(rows: list[dict], path: Path, columns: list[str] = COLUMNS) -> None:
    """``rows`` as CSV with ``columns`` (likelihood rows by default), other keys dropped."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["n_t"] = int(row["n_t"])
        for key in FLOAT_COLUMNS:
            row[key] = float(row[key]) if row.get(key) not in (None, "") else math.nan
    return rows


def cell(value, digits: int) -> str:
    """A table cell: a float to ``digits`` places ("–" for NaN), anything else as text."""
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: list[dict]) -> str:
    header = (
        "| case | n_t | status | peak GiB | likelihood s | s / MC sample | MFU | rollout s "
        "| step s |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['case']} | {r['n_t']} | {r['status']} | {cell(r['peak_gib'], 1)} | "
        f"{cell(r['likelihood_s'], 2)} | {cell(r['likelihood_s_per_sample'], 3)} | "
        f"{cell(r['mfu'], 2)} | {cell(r.get('rollout_s', math.nan), 2)} | "
        f"{cell(r['step_s'], 2)} |"
        for r in rows
    ]
    return header + "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, title: str, memory_limit_gib: float | None) -> bool:
    """Peak memory and likelihood time per MC sample against n_t; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (mem_ax, time_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for case in dict.fromkeys(r["case"] for r in rows):
        ok = [r for r in rows if r["case"] == case and r["status"] == "ok"]
        oom = [r["n_t"] for r in rows if r["case"] == case and r["status"] != "ok"]
        if ok:
            line = mem_ax.plot(
                [r["n_t"] for r in ok], [r["peak_gib"] for r in ok], "o-", label=case
            )[0]
            time_ax.plot(
                [r["n_t"] for r in ok],
                [r["likelihood_s_per_sample"] for r in ok],
                "o-",
                color=line.get_color(),
                label=case,
            )
            if oom and memory_limit_gib:
                mem_ax.plot(
                    oom,
                    [memory_limit_gib] * len(oom),
                    "x",
                    color=line.get_color(),
                    markersize=10,
                    label=f"{case}: OOM",
                )
    if memory_limit_gib:
        mem_ax.axhline(memory_limit_gib, color="grey", linestyle=":", linewidth=1)
    for ax in (mem_ax, time_ax):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("n_t (MC samples per response)")
        ax.grid(True, alpha=0.3)
    time_ax.set_ylim(bottom=0)
    mem_ax.set_ylabel("peak GPU memory of one step (GiB)")
    time_ax.set_ylabel("likelihood phase, seconds per MC sample")
    mem_ax.legend(fontsize=8)
    time_ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


MODE_COLUMNS = [
    "mode",
    "compile",
    "rows",
    "gen_length",
    "block_length",
    "steps",
    "temperature",
    "status",
    "seconds",
    "warmup_s",
    "tok_s",
    "speedup_vs_exact",
    "forwards",
    "full_forwards",
    "peak_gib",
    "groups_with_duplicate",
    "tokens_differ_vs_exact",
    "likelihood_s",
    "rollout_fraction_of_step",
]


def write_mode_csv(rows: list[dict], path: Path) -> None:
    write_csv(rows, path, MODE_COLUMNS)


def write_mode_files(rows: list[dict], out: Path, group_size: int) -> str:
    """Writes ``rollout_modes.csv`` and ``rollout_modes.md`` of the rows into ``out``; returns
    the table."""
    write_mode_csv(rows, out / "rollout_modes.csv")
    table = mode_table(rows, group_size)
    (out / "rollout_modes.md").write_text(table)
    return table


def mode_table(rows: list[dict], group_size: int) -> str:
    """Markdown table of the rollout modes, with what its columns mean."""
    header = (
        "| mode | compile | rows | gen | block | steps | status | s | tok/s | speed-up | "
        "forwards (full) | peak GiB | dup. groups | tokens ≠ exact | rollout / BGPO step |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        forwards = f"{r['forwards']} ({r['full_forwards']})" if "forwards" in r else "–"
        lines.append(
            f"| {r['mode']} | {'yes' if r['compile'] else 'no'} | {r['rows']} | "
            f"{r['gen_length']} | {r['block_length']} | {r['steps']} | {r['status']} | "
            f"{cell(r.get('seconds', math.nan), 3)} | {cell(r.get('tok_s', math.nan), 0)} | "
            f"{cell(r['speedup_vs_exact'], 2)} | {forwards} | "
            f"{cell(r.get('peak_gib', math.nan), 1)} | "
            f"{cell(r.get('groups_with_duplicate', math.nan), 2)} | "
            f"{cell(r['tokens_differ_vs_exact'], 3)} | "
            f"{cell(r['rollout_fraction_of_step'], 2)} |"
        )
    notes = (
        "\nSeconds of one rollout after a warm-up rollout, CUDA-synchronised. Speed-up and "
        "tokens ≠ exact: against the eager exact sampler at the same rows and seed. Forwards: "
        "model calls, in brackets those over the full sequence (exact steps, cache refreshes). "
        f"Dup. groups: fraction of prompts whose {group_size} responses (temperature as in the "
        "table's config) include two identical ones; a random model's logits are near "
        "uniform, so it is only meaningful on a trained model. Rollout / BGPO step: rollout "
        "seconds over rollout + BGPO likelihood phase at n_t = 16, scaled linearly to the "
        "rows.\n"
    )
    return header + "\n".join(lines) + "\n" + notes
