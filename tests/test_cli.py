"""The lazykit command: list, run, help, and clear errors."""

import subprocess
import sys

import pytest

from lazykit.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    assert "spline_1d" in capsys.readouterr().out


def test_run_writes_files_and_prints_summary(tmp_path, capsys):
    assert main(["run", "spline_1d", "--quick", "--seed", "1", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "ridge_slope" in captured.out and "spline_1d" in captured.err
    assert (tmp_path / "results.json").exists() and (tmp_path / "fits.png").exists()
    # self-explaining summary: what each column and finding means
    assert "ridge_to_smoothing_spline: RMS distance on the data interval" in captured.out
    assert "ridge_slope: " in captured.out and "log-log slope" in captured.out


@pytest.mark.parametrize("argv,message", [
    (["run", "nope"], "unknown experiment 'nope'"),
    (["run", "spline_1d", "--quick", "--full"], "not allowed with argument"),
    (["run", "spline_1d", "--seed", "x"], "invalid int value"),
    (["fly"], "invalid choice"),
])
def test_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_everywhere():
    for argv in (["--help"], ["run", "--help"], ["list", "--help"]):
        out = subprocess.run([sys.executable, "-m", "lazykit", *argv], capture_output=True,
                             text=True, check=True).stdout
        assert "usage: lazykit" in out
