"""Command line: ``lazykit list``, ``lazykit --version`` and
``lazykit run NAME [--quick | --full] [--seed S] [--out DIR] [--force]``.

Every flag is checked before anything runs, and so is the output folder (see
:mod:`lazykit.experiments.output`): user errors end with a message and exit code 2,
never a traceback. The output folder is written atomically and an existing one is
replaced only with ``--force``.
"""

from __future__ import annotations

import argparse
import difflib
import pathlib
import sys
import time

from lazykit import __version__
from lazykit._validation import MAX_SEED, check_seed
from lazykit.experiments.output import OutputFolderError, check_output_folder, write_output_folder
from lazykit.experiments.registry import EXPERIMENTS

INTERRUPTED = 130  # the shell's exit code for a command ended by Ctrl-C (128 + SIGINT)


def _experiment_name(text: str) -> str:
    """argparse type of NAME: a registered experiment, with a suggestion when misspelled."""
    if text in EXPERIMENTS:
        return text
    close = difflib.get_close_matches(text, list(EXPERIMENTS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise argparse.ArgumentTypeError(
        f"unknown experiment {text!r}; choose one of {', '.join(sorted(EXPERIMENTS))} "
        f"(see `lazykit list`).{hint}")


def _seed(text: str) -> int:
    """argparse type of --seed: an integer in NumPy's seed range."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid int value: {text!r} (the seed must be an integer from 0 to "
            f"{MAX_SEED})") from None
    try:
        return check_seed(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _folder(text: str) -> pathlib.Path:
    """argparse type of --out: a non-empty path (checked further before the run)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a folder path; got {text!r}.")
    return pathlib.Path(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lazykit",
        description="Run the landmark experiments of the lazy-training theory.")
    parser.add_argument("--version", action="version", version=f"lazykit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,run}")
    commands.add_parser("list", help="list the experiments",
                        description="List the experiments with a one-line description.")
    run = commands.add_parser(
        "run", help="run one experiment",
        description="Run one experiment, print its summary table and write results.json, "
                    "results.csv and PNG figures into --out. The folder is written "
                    "atomically (all files of this run, or the folder unchanged) and an "
                    "existing non-empty one is refused unless --force.")
    run.add_argument("name", type=_experiment_name, metavar="NAME",
                     help=f"experiment name: {', '.join(sorted(EXPERIMENTS))}")
    size = run.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="setting", action="store_const", const="quick",
                      help="CI-sized setting (default)")
    size.add_argument("--full", dest="setting", action="store_const", const="full",
                      help="paper-sized setting")
    run.add_argument("--seed", type=_seed, default=0,
                     help=f"random seed, an integer from 0 to {MAX_SEED} (default 0)")
    run.add_argument("--out", type=_folder, default=None, metavar="DIR",
                     help="output folder (default results/NAME); must be new or empty, "
                          "unless --force")
    run.add_argument("--force", action="store_true",
                     help="replace an existing output folder that holds a previous output "
                          "(only .json, .csv and .png files)")
    run.set_defaults(setting="quick", error=run.error)  # error: usage errors found after parsing
    return parser


def _list() -> int:
    width = max(len(name) for name in EXPERIMENTS)
    for name, experiment in sorted(EXPERIMENTS.items()):
        print(f"{name:{width}s}  {experiment.description}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``lazykit`` command; returns the exit code.

    0 on success, 2 for a usage error (bad flag, unusable output folder), 1 when
    the output cannot be written after the run, 130 after Ctrl-C.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list()
    if not isinstance(args.seed, int):  # argparse hands "--seed=--" over as [] unchecked
        args.error(f"argument --seed: expected an integer from 0 to {MAX_SEED}; "
                   f"got {args.seed!r}.")
    out = args.out if args.out is not None else pathlib.Path("results") / args.name
    try:
        check_output_folder(out, force=args.force)
    except OutputFolderError as err:
        args.error(f"argument --out: {err}")
    from lazykit import experiments

    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {message}", file=sys.stderr, flush=True)

    progress(f"running {args.name} ({args.setting}, seed {args.seed})")
    try:
        result = experiments.run(args.name, setting=args.setting, seed=args.seed,
                                 progress=progress)
        written = write_output_folder(out, result.save, force=args.force)
    except KeyboardInterrupt:
        print(f"\nlazykit: interrupted; {out} holds either what it held before or this run's "
              "complete output, never a mix.", file=sys.stderr)
        return INTERRUPTED
    except OutputFolderError as err:  # the folder changed during the run
        print(f"lazykit: error: nothing written: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"lazykit: error: could not write {out} (left as it was): {err}", file=sys.stderr)
        return 1
    progress(f"done; wrote {len(written)} files to {out}")
    print(result.summary_text())
    print("\nfiles: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
