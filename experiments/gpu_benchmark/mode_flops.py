"""How close the sampler's forwards run to the GPU's matrix-product speed, from benchmark logs.

For every timed mode without a cache (each forward runs the whole sequence), the model FLOPs
of its forwards over its seconds, against the dense bf16 matrix-product speed the same run
measured (``matmul_tflops``). A mode near that speed can only get faster by doing less work:

    python -m experiments.gpu_benchmark.mode_flops docs/benchmarks/mode_matrix_nomask/*/log.txt \\
        --out docs/benchmarks/mode_matrix_nomask/mode_flops.md

Cached modes (forwards over part of the sequence) are left out. The FLOPs are the matrix
products of ``Shape.forward_flops``: every position through the blocks, the block's positions
through the output head (the sampler keeps only those logits).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from experiments.gpu_benchmark.modes_from_log import read_log
from experiments.gpu_benchmark.shapes import SHAPES, Shape

HEADER = (
    "| run | shape | mode | compile | rows | s | forwards | TFLOP per forward | TFLOPS "
    "| of matmul TFLOPS |\n|---|---|---|---|---|---|---|---|---|---|"
)


def tflop_per_forward(shape: Shape, row: dict, prompt_length: int) -> float:
    """Model TFLOP of one forward of the whole sequence, the block's logits kept."""
    length = prompt_length + row["gen_length"]
    return shape.forward_flops(row["rows"], length, row["block_length"]) / 1e12


def achieved_tflops(shape: Shape, row: dict, prompt_length: int) -> float:
    """Model TFLOPS of a timed rollout whose every forward runs the whole sequence, else NaN."""
    if row.get("status") != "ok" or row["forwards"] != row["full_forwards"]:
        return math.nan
    return row["forwards"] * tflop_per_forward(shape, row, prompt_length) / row["seconds"]


def table_rows(log: Path) -> list[str]:
    """One table line per no-cache mode the run at ``log`` timed."""
    system, modes, _ = read_log(log)
    shape_name = system["shape"]
    shape = SHAPES[shape_name]
    prompt_length = int(system["args"]["prompt_length"])
    lines = []
    for row in modes:
        tflops = achieved_tflops(shape, row, prompt_length)
        if math.isnan(tflops):
            continue
        per_forward = tflop_per_forward(shape, row, prompt_length)
        lines.append(
            f"| {log.parent.name} | {shape_name} | {row['mode']} | "
            f"{'yes' if row['compile'] else 'no'} | {row['rows']} | {row['seconds']:.3f} | "
            f"{row['forwards']} | {per_forward:.2f} | {tflops:.0f} | "
            f"{tflops / system['matmul_tflops']:.2f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("logs", type=Path, nargs="+", help="what gpu_benchmark runs printed")
    cli.add_argument("--out", type=Path, help="also write the table here")
    args = cli.parse_args(argv)
    lines = [HEADER] + [line for log in args.logs for line in table_rows(log)]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
