"""Entry point.

``python -m experiments.run``                     the embedded default, end to end, offline
``python -m experiments.run fit --config X.yaml``  the Lightning CLI (fit/validate/test)
"""

from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> int:
    args = sys.argv[1:] if args is None else args
    if not args:
        from experiments.embedded_default import run_embedded_default

        run_embedded_default()
        return 0
    from bgpo_lightning.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
