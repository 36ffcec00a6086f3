"""The results object every experiment returns: tables, settings, figures, files.

An :class:`ExperimentResult` holds named tables (lists of row dicts), the
settings that produced them (seed included, so a run is reproducible) and a
summary table name. It converts to pandas (``to_frame``), to JSON and back,
draws its figures (``plot``, through the experiment's registered plotter) and
writes everything into a folder (``save``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import statistics
import textwrap
from typing import Any


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # NumPy scalars
        return _jsonable(value.item())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


@dataclasses.dataclass
class ExperimentResult:
    """Data of one experiment run.

    Attributes:
        name: the experiment's registered name.
        settings: every parameter of the run (``setting`` "quick"/"full", ``seed``, sizes...).
        tables: named tables, each a list of rows (dicts of scalars).
        summary: the name of the table that summarizes the run.
        findings: the qualitative statements the run supports, each with its
            measured value (e.g. a fitted slope), as {name: value}.
        notes: caveats found in the data (e.g. a setting that did not converge),
            printed with the summary.
        descriptions: what each summary column and finding means, {key: text}
            (a ``key + "_std"`` column is described from ``key``).

    Examples:
        >>> from lazykit.experiments import ExperimentResult
        >>> r = ExperimentResult("demo", {"seed": 0}, {"main": [{"x": 1, "y": 2.0}]}, "main")
        >>> r.to_frame().shape
        (1, 2)
        >>> ExperimentResult.from_json(r.to_json()).tables["main"][0]["y"]
        2.0
    """

    name: str
    settings: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    summary: str
    findings: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    descriptions: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_frame(self, table: str | None = None):
        """A pandas DataFrame of one table (the summary table by default)."""
        import pandas as pd

        name = self.summary if table is None else table
        if name not in self.tables:
            raise KeyError(f"table must be one of {sorted(self.tables)}; got {name!r}.")
        return pd.DataFrame(self.tables[name])

    def to_json(self) -> str:
        """All data and settings as JSON (non-finite floats become null)."""
        return json.dumps(_jsonable(dataclasses.asdict(self)), indent=1)

    @classmethod
    def from_json(cls, text: str) -> ExperimentResult:
        """Rebuild a result written by :meth:`to_json`."""
        return cls(**json.loads(text))

    def plot(self) -> dict:
        """The experiment's figures, {file stem: matplotlib Figure}."""
        from lazykit.experiments.registry import get_experiment

        return get_experiment(self.name).plot(self)

    def save(self, folder) -> list[pathlib.Path]:
        """Write results.json, results.csv (the summary), one CSV per table and PNG figures.

        Files are written straight into ``folder`` (created if needed), replacing
        files of the same names. The ``lazykit run`` command instead writes through
        :func:`lazykit.experiments.output.write_output_folder`: atomically, and never
        over an existing output unless ``--force``.
        """
        import matplotlib.pyplot as plt

        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "results.json"]
        written[0].write_text(self.to_json())
        self.to_frame().to_csv(folder / "results.csv", index=False)
        written.append(folder / "results.csv")
        for table in self.tables:
            if table != self.summary:
                path = folder / f"{table}.csv"
                self.to_frame(table).to_csv(path, index=False)
                written.append(path)
        for stem, figure in self.plot().items():
            path = folder / f"{stem}.png"
            figure.savefig(path, dpi=130, bbox_inches="tight")
            plt.close(figure)
            written.append(path)
        return written

    def describe(self, key: str) -> str | None:
        """What the summary column or finding ``key`` means (None if not described).

        Examples:
            >>> from lazykit.experiments import ExperimentResult
            >>> r = ExperimentResult("demo", {}, {"main": [{"x": 1.0}]}, "main",
            ...                      descriptions={"x": "test error"})
            >>> r.describe("x_std")
            'standard deviation of x (test error) over the runs'
        """
        if key in self.descriptions:
            return self.descriptions[key]
        base = key.removesuffix("_std")
        if base != key and base in self.descriptions:
            return f"standard deviation of {base} ({self.descriptions[base]}) over the runs"
        return None

    def summary_text(self) -> str:
        """The summary table, the findings and the notes as plain text, with what each
        column and finding means.

        Examples:
            >>> from lazykit.experiments import ExperimentResult
            >>> r = ExperimentResult("demo", {}, {"main": [{"x": 1, "y": 0.5}]}, "main",
            ...                      {"slope": -0.5}, ["not converged"],
            ...                      {"x": "width", "slope": "fitted slope of y against x"})
            >>> print(r.summary_text())
             x   y
             1 0.5
            <BLANKLINE>
            Columns:
              x: width
            <BLANKLINE>
            Findings:
              slope: -0.5  -- fitted slope of y against x
            <BLANKLINE>
            Notes:
              - not converged
        """
        frame = self.to_frame()
        lines = [frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}")]
        columns = [(key, self.describe(key)) for key in frame.columns]
        if any(text for _, text in columns):
            lines += ["", "Columns:"]
            lines += [_wrap(f"{key}: {text}") for key, text in columns if text]
        if self.findings:
            lines += ["", "Findings:"]
            for key, value in self.findings.items():
                text = self.describe(key)
                lines.append(_wrap(f"{key}: {_format(value)}" + (f"  -- {text}" if text else "")))
        if self.notes:
            lines += ["", "Notes:"]
            lines += [_wrap(f"- {note}", indent="    ") for note in self.notes]
        return "\n".join(lines)


def mean_and_spread(rows, by: str, keys) -> list[dict]:
    """One row per value of ``by`` (in order of appearance): the mean of each of ``keys``
    and its sample standard deviation as ``key + "_std"`` (0 for a single row).

    Examples:
        >>> from lazykit.experiments.results import mean_and_spread
        >>> rows = [{"m": 1, "x": 1.0}, {"m": 1, "x": 3.0}, {"m": 2, "x": 5.0}]
        >>> mean_and_spread(rows, "m", ["x"])
        [{'m': 1, 'x': 2.0, 'x_std': 1.4142135623730951}, {'m': 2, 'x': 5.0, 'x_std': 0.0}]
    """
    summary = []
    for value in dict.fromkeys(r[by] for r in rows):
        group = [r for r in rows if r[by] == value]
        entry = {by: value}
        for key in keys:
            values = [r[key] for r in group]
            entry[key] = float(sum(values) / len(values))
            entry[key + "_std"] = float(statistics.stdev(values)) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


def _wrap(text: str, indent: str = "      ") -> str:
    return textwrap.fill(text, width=100, initial_indent="  ", subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    return str(value)
