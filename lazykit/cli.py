"""Command line: ``lazykit list`` and ``lazykit run NAME [--quick | --full] [--seed S]``."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from lazykit.experiments.registry import EXPERIMENTS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lazykit",
        description="Run the landmark experiments of the lazy-training theory.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,run}")
    commands.add_parser("list", help="list the experiments",
                        description="List the experiments with a one-line description.")
    run = commands.add_parser(
        "run", help="run one experiment",
        description="Run one experiment, print its summary table and write results.json, "
                    "results.csv and PNG figures into --out.")
    run.add_argument("name", help="experiment name (see `lazykit list`)")
    size = run.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="setting", action="store_const", const="quick",
                      help="CI-sized setting (default)")
    size.add_argument("--full", dest="setting", action="store_const", const="full",
                      help="paper-sized setting")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--out", type=pathlib.Path, default=None,
                     help="output folder (default results/NAME)")
    run.set_defaults(setting="quick")
    return parser


def main(argv=None) -> int:
    """Entry point of the ``lazykit`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        width = max(len(name) for name in EXPERIMENTS)
        for name, experiment in sorted(EXPERIMENTS.items()):
            print(f"{name:{width}s}  {experiment.description}")
        return 0
    if args.name not in EXPERIMENTS:
        parser.error(f"unknown experiment {args.name!r}; choose one of "
                     f"{', '.join(sorted(EXPERIMENTS))} (see `lazykit list`).")
    from lazykit.experiments import run

    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {message}", file=sys.stderr, flush=True)

    progress(f"running {args.name} ({args.setting}, seed {args.seed})")
    result = run(args.name, setting=args.setting, seed=args.seed, progress=progress)
    out = args.out or pathlib.Path("results") / args.name
    written = result.save(out)
    progress(f"done; wrote {len(written)} files to {out}")
    print(result.summary_text())
    print("\nfiles: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
