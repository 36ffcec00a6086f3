"""Output folders of ``lazykit run``: checked before the run, written atomically, never clobbered.

A run's files are first written into a new hidden folder next to the destination
(``.NAME.XXXX.tmp``) and then renamed into place in one step. An interruption
(Ctrl-C, a full disk, an error while drawing a figure) therefore leaves the
destination as it was: the previous complete output, or nothing; never the
files of two runs mixed. The temporary folder is removed on any error.

An existing non-empty destination is replaced only with ``force=True`` (the
command's ``--force``), and only when it looks like a previous output: plain
``.json``, ``.csv`` and ``.png`` files, no sub-folders, no other files. The
previous output is renamed aside, the new one renamed in, and the old one
deleted, with Ctrl-C held back during these three steps (a failure restores
the old one). Only a hard kill (SIGKILL, power loss) can leave a temporary
folder behind; it never touches the destination.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable

OUTPUT_SUFFIXES = (".json", ".csv", ".png")


class OutputFolderError(ValueError):
    """The output folder cannot be used (exists as a file, not writable, not empty...)."""


def check_output_folder(folder, *, force: bool = False) -> pathlib.Path:
    """Check that a run can write its output folder ``folder``; return its absolute path.

    Checked: the path is not an existing file; it is not the current folder (or a
    folder containing it); an existing non-empty folder is refused unless ``force``,
    and even then unless it holds only files lazykit writes; the nearest existing
    parent is a folder in which a new folder can be created (tried, not guessed).

    Args:
        folder: the destination folder (need not exist).
        force: allow replacing a previous output folder.

    Returns:
        The absolute destination path (symbolic links resolved).

    Raises:
        OutputFolderError: with a message naming the path and what to do.

    Examples:
        >>> import pathlib, tempfile
        >>> from lazykit.experiments.output import check_output_folder
        >>> base = pathlib.Path(tempfile.mkdtemp())
        >>> check_output_folder(base / "new" / "run").name
        'run'
        >>> (base / "taken").write_text("mine")
        4
        >>> check_output_folder(base / "taken")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lazykit.experiments.output.OutputFolderError: ...taken is an existing file, not a folder...
    """
    given = pathlib.Path(folder)
    if str(folder) == "":
        raise OutputFolderError("the output folder must be a non-empty path; got ''.")
    if given.is_symlink() and not given.exists():
        raise OutputFolderError(f"{given} is a broken symbolic link; choose another --out.")
    path = given.resolve()
    if path.exists() and not path.is_dir():
        raise OutputFolderError(f"{given} is an existing file, not a folder; choose another --out.")
    cwd = pathlib.Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        raise OutputFolderError(f"{given} is the current folder or contains it; the output "
                                "folder is replaced as a whole, so choose a new sub-folder "
                                "with --out.")
    if path.is_dir():
        _check_replaceable(given, path, force)
    _check_writable(given, path.parent)
    return path


def _check_replaceable(given: pathlib.Path, path: pathlib.Path, force: bool) -> None:
    entries = sorted(path.iterdir())
    if not entries:
        return
    if not force:
        raise OutputFolderError(f"{given} already exists and is not empty; pass --force to "
                                "replace it, or choose another --out.")
    foreign = [e.name + ("/" if e.is_dir() else "") for e in entries
               if e.is_symlink() or not e.is_file() or e.suffix not in OUTPUT_SUFFIXES]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputFolderError(f"{given} holds files that lazykit does not write ({shown}); "
                                "--force replaces only a previous output folder (.json, .csv "
                                "and .png files), so choose another --out.")


def _check_writable(given: pathlib.Path, parent: pathlib.Path) -> None:
    """The nearest existing ancestor of ``parent`` must be a folder that accepts a new folder."""
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputFolderError(f"cannot create {given}: {existing} is a file, not a folder; "
                                "choose another --out.")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lazykit-probe-", dir=existing))
    except OSError as err:
        raise OutputFolderError(f"cannot write {given}: creating a folder in {existing} "
                                f"failed ({err.strerror}); choose another --out.") from err


def write_output_folder(folder, write: Callable[[pathlib.Path], list], *,
                        force: bool = False) -> list[pathlib.Path]:
    """Write a run's output folder atomically: all of it, or nothing changed.

    Args:
        folder: the destination folder (checked again with :func:`check_output_folder`).
        write: called with a new empty folder; writes the files there and returns
            their paths (``ExperimentResult.save``).
        force: allow replacing a previous output folder.

    Returns:
        The written files' paths inside ``folder``.

    Examples:
        >>> import pathlib, tempfile
        >>> from lazykit.experiments.output import write_output_folder
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
        >>> def write(staging):
        ...     (staging / "results.json").write_text("{}")
        ...     return [staging / "results.json"]
        >>> [p.name for p in write_output_folder(out, write)]
        ['results.json']
        >>> write_output_folder(out, write)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lazykit.experiments.output.OutputFolderError: ...run already exists and is not empty...
        >>> [p.name for p in write_output_folder(out, write, force=True)]
        ['results.json']
    """
    path = check_output_folder(folder, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp",
                                            dir=path.parent))
    try:
        written = [pathlib.Path(p) for p in write(staging)]
        _move_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [pathlib.Path(folder) / p.relative_to(staging) for p in written]


def _move_into_place(staging: pathlib.Path, path: pathlib.Path) -> None:
    """Rename ``staging`` to ``path``; a previous ``path`` goes aside first and is deleted
    after, or comes back if the rename fails. Ctrl-C waits until this is done."""
    with sigint_deferred():
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        if not path.exists():
            os.replace(staging, path)  # a new destination: one atomic rename
            return
        aside = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
        os.rmdir(aside)  # a fresh name next to the destination
        os.replace(path, aside)
        try:
            os.replace(staging, path)
        except BaseException:
            os.replace(aside, path)
            raise
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def sigint_deferred():
    """Hold back Ctrl-C (SIGINT) inside the block and deliver it at its end.

    Outside the main thread (where handlers cannot be installed) it does nothing.

    Examples:
        >>> from lazykit.experiments.output import sigint_deferred
        >>> with sigint_deferred():
        ...     pass
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt
