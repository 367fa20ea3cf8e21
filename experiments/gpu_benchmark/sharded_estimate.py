"""Per-GPU memory under FSDP2, estimated from one GPU's measured BGPO rows.

    python -m experiments.gpu_benchmark.sharded_estimate DIR --shape 8b --gpus 8

A measured row's peak splits into the training state that FSDP2 shards (weights, gradients and
AdamW's two moments, at the bytes per parameter of the measured precision) and the rest
(activations, logits, temporaries), which sharding leaves on every GPU. The estimate for N GPUs
in another precision is that precision's state over N, plus the rest, plus the two decoder
layers FSDP2 holds unsharded at a time (the one running and the one prefetched).

BGPO reduce-scatters gradients only on a step's last backward (``sharding.gradient_sync``), so
between its backwards every GPU holds the full, unsharded gradient of the trained parameters:
the estimate counts the gradient whole instead of over N (``--sync-every-backward`` drops that,
for code that reduce-scatters at every backward).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.gpu_benchmark.report import read_csv
from experiments.gpu_benchmark.shapes import SHAPES

GIB = 2**30
#: Bytes per parameter of (weights, gradient, AdamW moments) for each trained parameter, and of
#: the compute copy of a gathered layer.
STATE_BYTES = {
    # bf16 weights, bf16 gradients, two bf16 moments (what the benchmark measures)
    "bf16-true": {"weight": 2, "grad": 2, "adam": 4, "compute": 2},
    # float32 master weights, float32 gradients and moments, bf16 compute copies
    "bf16-mixed": {"weight": 4, "grad": 4, "adam": 8, "compute": 2},
}


def state_bytes(params: int, trainable: int, precision: str) -> int:
    """Weights of every parameter plus the gradient and AdamW moments of the trained ones."""
    b = STATE_BYTES[precision]
    return params * b["weight"] + trainable * (b["grad"] + b["adam"])


def estimate_rows(
    rows: list[dict],
    params: int,
    layer_params: int,
    measured: str,
    target: str,
    gpus: int,
    deferred_sync: bool = True,
) -> list[dict]:
    """One estimate per measured ``ok`` row (see the module docstring)."""
    out = []
    for row in rows:
        if row["status"] != "ok":
            continue
        trainable = int(row["trainable_params"])
        measured_state = state_bytes(params, trainable, measured) / GIB
        rest = row["peak_gib"] - measured_state
        # LoRA's frozen base is sharded too; it is stored in the compute dtype, not as a master.
        frozen = params - trainable
        target_state = (
            state_bytes(trainable, trainable, target) + frozen * STATE_BYTES[target]["compute"]
        )
        gathered = 2 * layer_params * STATE_BYTES[target]["compute"] / GIB
        gradient = trainable * STATE_BYTES[target]["grad"]
        # Kept whole between the backwards of a step: counted in full, not over the GPUs.
        unsharded_grad = gradient * (1 - 1 / gpus) / GIB if deferred_sync else 0.0
        out.append(
            {
                "case": row["case"],
                "n_t": row["n_t"],
                "measured_peak_gib": row["peak_gib"],
                "measured_state_gib": measured_state,
                "rest_gib": rest,
                "target_state_per_gpu_gib": target_state / gpus / GIB,
                "gathered_layers_gib": gathered,
                "unsharded_grad_gib": unsharded_grad,
                "per_gpu_gib": target_state / gpus / GIB + rest + gathered + unsharded_grad,
            }
        )
    return out


def markdown(rows: list[dict], target: str, gpus: int) -> str:
    lines = [
        f"| case | n_t | measured peak GiB | its training state GiB | rest GiB | {target} state "
        f"/ {gpus} GiB | 2 gathered layers GiB | gradient kept whole (extra) GiB | "
        "estimate per GPU GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['n_t']} | {r['measured_peak_gib']:.1f} | "
            f"{r['measured_state_gib']:.1f} | {r['rest_gib']:.1f} | "
            f"{r['target_state_per_gpu_gib']:.1f} | {r['gathered_layers_gib']:.1f} | "
            f"{r['unsharded_grad_gib']:.1f} | {r['per_gpu_gib']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("directory", type=Path, help="a gpu_benchmark output with likelihood.csv")
    p.add_argument("--shape", choices=sorted(SHAPES), required=True)
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--measured-precision", choices=sorted(STATE_BYTES), default="bf16-true")
    p.add_argument("--target-precision", choices=sorted(STATE_BYTES), default="bf16-mixed")
    p.add_argument(
        "--sync-every-backward",
        action="store_true",
        help="gradients reduce-scattered at every backward (not BGPO's once per step)",
    )
    args = p.parse_args(argv)
    shape = SHAPES[args.shape]
    layer_params = shape.body_params // shape.layers
    rows = estimate_rows(
        read_csv(args.directory / "likelihood.csv"),
        shape.params,
        layer_params,
        args.measured_precision,
        args.target_precision,
        args.gpus,
        deferred_sync=not args.sync_every_backward,
    )
    table = markdown(rows, args.target_precision, args.gpus)
    suffix = "_sync_every_backward" if args.sync_every_backward else ""
    name = f"fsdp2_estimate_{args.gpus}gpus_{args.target_precision}{suffix}.md"
    (args.directory / name).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
