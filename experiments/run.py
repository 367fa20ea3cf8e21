"""Entry point.

``python -m experiments.run``                     the embedded default, end to end, offline
``python -m experiments.run --seeds 0 1 2 ...``   the same with options (``--help`` lists them)
``python -m experiments.run fit --config X.yaml``  the Lightning CLI (fit/validate/test)
"""

from __future__ import annotations

import sys

SUBCOMMANDS = ("fit", "validate", "test", "predict")

USAGE = """\

The Lightning CLI runs any config:
  python -m experiments.run fit|validate|test --config experiments/configs/X.yaml [--KEY VALUE]
  python -m experiments.run fit --config X.yaml --help    every key a config can set
  python -m experiments.run fit --config X.yaml --print_config
"""


def main(args: list[str] | None = None) -> int:
    args = sys.argv[1:] if args is None else args
    if not args or args[0] not in SUBCOMMANDS:
        from experiments import embedded_default

        parser = embedded_default.parser()
        parser.prog = "python -m experiments.run"
        parser.epilog = embedded_default.EPILOG + USAGE
        return embedded_default.main(args, parser)
    from bgpo_lightning.cli import main as cli_main
    from experiments.quiet import quiet_entry_point

    quiet_entry_point()
    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
