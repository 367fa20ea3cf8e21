"""The warm-start recipe search (``recipe_search``) as a markdown table for the report."""

from __future__ import annotations


def _setting(overrides: list[str] | None, key: str) -> str:
    found = [o.split("=", 1)[1] for o in overrides or [] if o.split("=", 1)[0].endswith(key)]
    return found[0] if found else "–"


def recipe_table(found: dict) -> str:
    """The variants as a markdown table, for the report."""
    lines = [
        "| variant | params | hidden × layers | batch | lr | RoPE θ | SFT steps | wall s "
        "| val accuracy at each check % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in found.items():
        o = r.get("overrides")
        params = f"{r['params'] / 1e6:.1f}M" if r.get("params") else "–"
        seconds = f"{r['seconds']:.0f}" if r.get("seconds") else "–"
        checks = ", ".join(f"{100 * h['accuracy']:.1f}" for h in r.get("history", []))
        lines.append(
            f"| {name} | {params} | {_setting(o, 'hidden_size')} × {_setting(o, 'num_layers')} "
            f"| {_setting(o, 'batch_size')} | {_setting(o, 'lr')} | {_setting(o, 'rope_theta')} "
            f"| {r.get('sft_steps', '–')} | {seconds} | {checks or '–'} |"
        )
    return "\n".join(lines) + "\n"
