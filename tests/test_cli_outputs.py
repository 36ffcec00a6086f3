"""``lazykit run`` output folders: checked before the run, written atomically, never clobbered
without --force, and every flag validated with exit code 2 and a message (issue 16, item 10).

The experiment is replaced by a fake one (a few milliseconds) through ``experiments.run``;
``test_cli.py`` runs a real one end to end.
"""

import os
import pathlib
import signal
import subprocess
import sys

import pytest

import lazykit
from lazykit import experiments
from lazykit.cli import main
from lazykit.experiments import output
from lazykit.experiments.results import ExperimentResult


class FakeResult(ExperimentResult):
    """A result whose figure is a small text file, so that saving has several steps."""

    def plot(self):
        return {}

    def save(self, folder):
        written = super().save(folder)
        if self.settings.get("interrupt"):
            raise KeyboardInterrupt  # Ctrl-C after results.json and results.csv were written
        figure = pathlib.Path(folder) / "figure.png"
        figure.write_text(f"figure of seed {self.settings['seed']}")
        return [*written, figure]


class FakeRun(list):
    """Stands in for ``experiments.run``; the list of seeds it ran shows whether a run started."""

    interrupt = False

    def __call__(self, name, setting="quick", seed=0, progress=None):
        self.append(seed)
        return FakeResult(name, {"seed": seed, "interrupt": self.interrupt},
                          {"main": [{"seed": seed}]}, "main", {"seed_found": seed})


@pytest.fixture
def fake_run(monkeypatch):
    fake = FakeRun()
    monkeypatch.setattr(experiments, "run", fake)
    return fake


def _cli(*argv):
    return main(["run", "spline_1d", *map(str, argv)])


def _snapshot(folder: pathlib.Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _leftovers(parent: pathlib.Path) -> list:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lazykit {lazykit.__version__}"


def test_writes_a_new_folder_and_leaves_no_temporary_folder(tmp_path, fake_run, capsys):
    out = tmp_path / "deep" / "run"
    assert _cli("--seed", 3, "--out", out) == 0
    assert set(_snapshot(out)) == {"results.json", "results.csv", "figure.png"}
    assert (out / "figure.png").read_text() == "figure of seed 3"
    assert _leftovers(out.parent) == []
    assert f"{out / 'results.json'}" in capsys.readouterr().out


def test_existing_output_is_refused_before_the_run_without_force(tmp_path, fake_run, capsys):
    out = tmp_path / "run"
    assert _cli("--seed", 1, "--out", out) == 0
    before = _snapshot(out)
    with pytest.raises(SystemExit) as info:
        _cli("--seed", 2, "--out", out)
    assert info.value.code == 2
    assert "already exists and is not empty; pass --force" in capsys.readouterr().err
    assert fake_run == [1]  # the second run never started
    assert _snapshot(out) == before


def test_the_users_own_files_are_never_overwritten(tmp_path, fake_run, capsys):
    (tmp_path / "results.json").write_text("my own results")
    with pytest.raises(SystemExit) as info:
        _cli("--out", tmp_path)
    assert info.value.code == 2 and fake_run == []
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as info:
        _cli("--out", tmp_path, "--force")  # --force replaces only a previous output
    assert info.value.code == 2 and fake_run == []
    assert "lazykit does not write (notes.txt)" in capsys.readouterr().err
    assert (tmp_path / "results.json").read_text() == "my own results"


def test_force_replaces_a_previous_output_as_a_whole(tmp_path, fake_run):
    out = tmp_path / "run"
    assert _cli("--seed", 1, "--out", out) == 0
    (out / "old_table.csv").write_text("of run 1")
    assert _cli("--seed", 2, "--out", out, "--force") == 0
    assert set(_snapshot(out)) == {"results.json", "results.csv", "figure.png"}
    assert (out / "figure.png").read_text() == "figure of seed 2"
    assert ExperimentResult.from_json((out / "results.json").read_text()).settings["seed"] == 2
    assert _leftovers(tmp_path) == []


def test_default_folder_is_not_overwritten_by_a_second_run(tmp_path, fake_run, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _cli() == 0
    assert (tmp_path / "results" / "spline_1d" / "results.json").exists()
    with pytest.raises(SystemExit) as info:
        _cli("--seed", 5)
    assert info.value.code == 2 and fake_run == [0]
    assert _cli("--seed", 5, "--force") == 0


@pytest.mark.parametrize("previous", [False, True])
def test_ctrl_c_while_saving_leaves_the_old_output_or_nothing(tmp_path, fake_run, previous,
                                                               capsys):
    """Ctrl-C after results.json and results.csv were written, before the figure."""
    out = tmp_path / "run"
    if previous:
        assert _cli("--seed", 1, "--out", out) == 0
    before = _snapshot(out) if previous else None
    fake_run.interrupt = True
    assert _cli("--seed", 2, "--out", out, "--force") == 130
    assert "interrupted" in capsys.readouterr().err
    if previous:
        assert _snapshot(out) == before  # the complete output of seed 1, nothing of seed 2
    else:
        assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_failure_while_swapping_restores_the_old_output(tmp_path, fake_run, monkeypatch):
    """The rename of the new folder into place fails: the previous output comes back."""
    out = tmp_path / "run"
    assert _cli("--seed", 1, "--out", out) == 0
    before = _snapshot(out)
    real = os.replace

    def replace(src, dst):
        if pathlib.Path(src).name.endswith(".tmp"):
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(output.os, "replace", replace)
    assert _cli("--seed", 2, "--out", out, "--force") == 130
    assert _snapshot(out) == before
    assert _leftovers(tmp_path) == []


@pytest.fixture
def default_sigint():
    """SIGINT raises KeyboardInterrupt, as in a terminal, whatever the test process inherited
    (a full-suite worker was seen with SIGINT ignored, so the CLI rightly did not stop)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_real_sigint_during_the_swap_waits_until_the_new_output_is_in_place(
        tmp_path, fake_run, monkeypatch, default_sigint):
    """SIGINT sent between the two renames of the swap is held back: the destination holds
    the complete new output, and the interruption is reported after."""
    out = tmp_path / "run"
    assert _cli("--seed", 1, "--out", out) == 0
    real = os.replace

    def replace(src, dst):
        real(src, dst)
        if pathlib.Path(dst).name.endswith(".old"):  # the previous output has just gone aside
            signal.raise_signal(signal.SIGINT)  # delivered to this (the main) thread

    monkeypatch.setattr(output.os, "replace", replace)
    assert _cli("--seed", 2, "--out", out, "--force") == 130
    assert (out / "figure.png").read_text() == "figure of seed 2"
    assert set(_snapshot(out)) == {"results.json", "results.csv", "figure.png"}
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_text("x") and p, "is an existing file, not a folder"),
    (lambda p: p.write_text("x") and p / "sub", "is a file, not a folder"),
    (lambda p: p.symlink_to(p.parent / "missing") or p, "broken symbolic link"),
])
def test_unusable_out_fails_before_the_run(tmp_path, fake_run, capsys, make, message):
    out = make(tmp_path / "target")
    with pytest.raises(SystemExit) as info:
        _cli("--out", out)
    assert info.value.code == 2 and fake_run == []
    err = capsys.readouterr().err
    assert message in err and "argument --out" in err and "Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write into read-only folders")
def test_unwritable_parent_fails_before_the_run(tmp_path, fake_run, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(SystemExit) as info:
            _cli("--out", locked / "run")
    finally:
        locked.chmod(0o700)
    assert info.value.code == 2 and fake_run == []
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.skipif(not pathlib.Path("/proc/self").exists(), reason="needs Linux /proc")
def test_unwritable_filesystem_fails_before_the_run(fake_run, capsys):
    with pytest.raises(SystemExit) as info:
        _cli("--out", "/proc/lazykit-run")
    assert info.value.code == 2 and fake_run == []
    assert "cannot write /proc/lazykit-run" in capsys.readouterr().err


def test_current_folder_is_refused(tmp_path, fake_run, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        _cli("--out", ".")
    assert info.value.code == 2 and fake_run == []
    assert "current folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--seed", "-1"], "got -1"),
    (["--seed", str(2**32)], "from 0 to 4294967295"),
    (["--seed", "1.5"], "invalid int value: '1.5'"),
    (["--seed", "1e3"], "invalid int value"),
    (["--out", ""], "expected a folder path"),
    (["--full", "--quick"], "not allowed with argument"),
    (["--force=yes"], "ignored explicit argument"),
])
def test_flags_are_validated(argv, message, fake_run, capsys):
    with pytest.raises(SystemExit) as info:
        _cli(*argv)
    assert info.value.code == 2 and fake_run == []
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_misspelled_name_gets_a_suggestion(fake_run, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "spline1d"])
    assert info.value.code == 2
    assert "Did you mean 'spline_1d'?" in capsys.readouterr().err


def test_largest_seed_is_accepted(tmp_path, fake_run):
    assert _cli("--seed", 2**32 - 1, "--out", tmp_path / "run") == 0
    assert fake_run == [2**32 - 1]


def test_library_run_refuses_bad_seeds():
    with pytest.raises(ValueError, match="seed must be an integer from 0 to 4294967295"):
        experiments.registry.run("spline_1d", seed=-1)
    with pytest.raises(TypeError, match="seed must be an integer"):
        experiments.registry.run("spline_1d", seed=1.5)


def test_seed_minus_one_from_the_shell_has_no_traceback():
    done = subprocess.run([sys.executable, "-m", "lazykit", "run", "spline_1d", "--seed", "-1"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "argument --seed" in done.stderr and "Traceback" not in done.stderr
