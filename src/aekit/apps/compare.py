"""``aekit compare`` and ``aekit report``: several runs side by side.

:func:`load_test_data` finds each run's test data; :func:`compare_rows` gathers each run's last
training metrics and, given test data, its test metrics; :func:`format_table` lays the rows out
as aligned text columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aekit.data.dataset import ArrayDataset


def load_test_data(run: Any, name: str | None = None, limit: int | None = None) -> ArrayDataset:
    """The test split of ``name``, or of the dataset ``run`` trained on, read as the run reads data
    (a table with the run's columns and categories).

    Raises:
        DataError: the dataset has no test split here (a file, or a name not downloaded).
    """
    return run.load_data(name or run.config.data.source, "test", limit=limit)


def compare_rows(
    runs: Sequence[Any], labels: Sequence[str], data: Sequence[ArrayDataset | None]
) -> list[dict[str, Any]]:
    """One row per run: its label, model, epochs, last train/val loss and MSE, and test metrics.

    Args:
        runs: :class:`aekit.Run` objects.
        labels: What to call each run (the path the user gave).
        data: Test data per run, or None to leave its test metrics out.
    """
    rows = []
    for run, label, test in zip(runs, labels, data, strict=True):
        last = run.history[-1] if run.history else {}
        row: dict[str, Any] = {"run": label, "model": run.config.model, "epochs": len(run.history)}
        row.update(
            {
                k: v
                for k, v in last.items()
                if k.startswith(("train/", "val/")) and k.endswith(("loss", "mse"))
            }
        )
        if test is not None:
            row.update({f"test/{k}": v for k, v in run.evaluate(test).items() if k != "n"})
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]], digits: int = 5) -> str:
    """``rows`` as aligned columns (the union of their keys, in first-seen order); floats to ``digits``.

    >>> print(format_table([{"run": "a", "mse": 0.5}, {"run": "bb"}]))
    run  mse
    a    0.50000
    bb
    """
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [
        [f"{row[c]:.{digits}f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        for row in rows
    ]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = [columns, *cells]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
