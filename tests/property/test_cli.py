"""Properties of the command line's argument parsing (``lazykit.cli.main(argv)``).

No experiment runs: ``lazykit.experiments.run`` is replaced by a stub that records
its arguments and stops, so each example checks what the parser accepted, or
that it refused the command line with exit code 2 and a message naming the flag,
before any run started and without touching the output folder.
"""

import contextlib
import io
import pathlib
import tempfile
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import lazykit
from lazykit import experiments
from lazykit._validation import MAX_SEED
from lazykit.cli import main
from lazykit.experiments.registry import EXPERIMENTS

NAMES = sorted(EXPERIMENTS)
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=20)


class _Reached(Exception):
    """Raised by the stub in place of running an experiment."""


def _invoke(argv):
    """(exit code, stdout, stderr, the stub's call or None) of ``main(argv)``."""
    calls = []

    def stub(name, setting="quick", seed=0, progress=None):
        calls.append(dict(name=name, setting=setting, seed=seed))
        raise _Reached

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(experiments, "run", stub), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = exit_.code
        except _Reached:
            code = None
    return code, out.getvalue(), err.getvalue(), (calls[0] if calls else None)


@contextlib.contextmanager
def _folder():
    with tempfile.TemporaryDirectory() as base:
        yield pathlib.Path(base)


def _refused(argv, flag):
    code, _, err, call = _invoke(argv)
    assert call is None, f"{argv} started a run"
    assert code == 2, (argv, code, err)
    assert flag in err, f"{argv}: the message does not name {flag}: {err!r}"
    assert "Traceback" not in err
    return err


@given(st.sampled_from(NAMES), st.sampled_from((None, "--quick", "--full")),
       st.one_of(st.none(), st.integers(0, MAX_SEED)), st.booleans())
def test_valid_command_lines_reach_the_run_with_their_values(name, size, seed, nested):
    with _folder() as base:
        argv = ["run", name, "--out", str(base / "new" / "out" if nested else base / "out")]
        argv += [size] if size else []
        argv += ["--seed", str(seed)] if seed is not None else []
        code, _, err, call = _invoke(argv)
        assert code is None and call is not None, (argv, code, err)
        assert call == dict(name=name, setting="full" if size == "--full" else "quick",
                            seed=0 if seed is None else seed)


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_SEED + 1),
                 st.sampled_from(("1.5", "", "one", "1e3", "0x10", "--", "nan", "-0.0"))),
       st.booleans())
@example("--", True)  # argparse would hand the run seed=[]
@example(-1, False)  # issue 16: ended in a traceback
def test_seeds_outside_numpys_range_are_refused_naming_the_flag(seed, joined):
    text = str(seed)
    option_like = text.startswith("-") and not text[1:2].isdigit()  # "--": not a value
    flag = [f"--seed={text}"] if joined or option_like else ["--seed", text]
    with _folder() as base:
        _refused(["run", NAMES[0], "--out", str(base / "out"), *flag], "--seed")


@given(WORDS.filter(lambda word: word not in EXPERIMENTS))
def test_unknown_experiments_are_refused_naming_them(name):
    err = _refused(["run", name], "NAME")
    assert repr(name) in err


def test_quick_and_full_exclude_each_other():
    _refused(["run", NAMES[0], "--quick", "--full"], "--full")


@given(st.sampled_from(NAMES), st.sampled_from(("notes.txt", "results.json", "fig.png", "a.py")),
       st.binary(min_size=1, max_size=50), st.booleans())
def test_an_existing_output_is_never_overwritten_without_force(name, filename, content, as_file):
    with _folder() as base:
        target = base / "out"
        if as_file:  # --out names an existing file
            target.write_bytes(content)
            mine = target
        else:  # --out names a folder holding a file of the user
            target.mkdir()
            mine = target / filename
            mine.write_bytes(content)
        _refused(["run", name, "--out", str(target)], "--out")
        assert mine.read_bytes() == content
        code, _, err, call = _invoke(["run", name, "--out", str(target), "--force"])
        previous_output = not as_file and filename.endswith((".json", ".csv", ".png"))
        if previous_output:  # --force may replace a previous output, after the run
            assert call is not None, err
        else:
            assert call is None and code == 2 and "--out" in err, (code, err)
        assert mine.read_bytes() == content  # nothing written before the run ends


@given(st.sampled_from(("", " ", "\t")))
def test_empty_output_paths_are_refused(path):
    _refused(["run", NAMES[0], "--out", path], "--out")


@given(st.lists(st.sampled_from(("--speed", "-x", "--seeds", "--fast", "--output")), min_size=1,
                max_size=2), st.sampled_from(NAMES))
def test_unknown_flags_are_refused(flags, name):
    code, _, err, call = _invoke(["run", name, *flags, "1"])
    assert call is None and code == 2 and flags[0].split("=")[0] in err, err


@pytest.mark.parametrize("argv", [["--version"], ["--version", "list"]])
def test_version(argv):
    code, out, err, call = _invoke(argv)
    assert code == 0 and call is None
    assert lazykit.__version__ in out + err


def test_list_names_every_experiment():
    code, out, _, call = _invoke(["list"])
    assert code == 0 and call is None
    assert all(name in out for name in NAMES)
