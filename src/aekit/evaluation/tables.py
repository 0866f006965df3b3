"""Reconstruction metrics for tables, in the table's own terms.

A table's features are min-max scaled numbers followed by one-hot categories (see
:mod:`aekit.data.tabular`), so PSNR and SSIM mean nothing there. What does: for each numeric
column the mean absolute error in the column's own units, and for each categorical column the
share of rows whose most probable category is the right one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aekit.data.tabular import TableSchema


def table_metrics(schema: TableSchema, x: np.ndarray, x_hat: np.ndarray) -> dict[str, float]:
    """Per-column errors of the reconstructions ``x_hat`` of the encoded rows ``x``.

    Returns:
        ``mse`` (over all features, in model space, as for any other data), ``numeric_mae`` (the
        mean over numeric columns of the absolute error as a share of the column's training
        range), ``category_accuracy`` (the mean over categorical columns of the share of rows
        whose arg-max category is right), and per column ``NAME/mae`` (in the column's units)
        or ``NAME/accuracy``. Missing cells imputed on reading count with their filled value.

    Shape:
        x, x_hat: (N, schema.width)
    """
    x, x_hat = np.asarray(x, dtype=np.float64), np.asarray(x_hat, dtype=np.float64)
    if x.shape != x_hat.shape or x.ndim != 2 or x.shape[1] != schema.width:
        raise ValueError(f"expected two arrays (N, {schema.width}), got {x.shape} and {x_hat.shape}")
    out: dict[str, float] = {"mse": float(((x - x_hat) ** 2).mean())}
    shares, accuracies, per_column = [], [], {}
    for j, c in enumerate(schema.numeric):
        error = np.abs(x[:, j] - x_hat[:, j]).mean()  # in [0, 1] units: a share of the range
        shares.append(error)
        per_column[f"{c.name}/mae"] = float(error * c.span)
    start = len(schema.numeric)
    for c in schema.categorical:
        stop = start + len(c.categories)
        right = (x[:, start:stop].argmax(1) == x_hat[:, start:stop].argmax(1)).mean()
        accuracies.append(right)
        per_column[f"{c.name}/accuracy"] = float(right)
        start = stop
    if shares:
        out["numeric_mae"] = float(np.mean(shares))
    if accuracies:
        out["category_accuracy"] = float(np.mean(accuracies))
    return {**out, **per_column}


def format_table_metrics(schema: TableSchema, metrics: dict[str, Any]) -> list[str]:
    """Lines for a terminal: the overall figures, then one line per column in file order."""
    lines = [f"  mse                {metrics['mse']:.5f}  (all features, scaled to [0, 1])"]
    if "numeric_mae" in metrics:
        lines.append(
            f"  numeric_mae        {metrics['numeric_mae']:.5f}  (mean absolute error, share of each "
            "column's training range)"
        )
    if "category_accuracy" in metrics:
        lines.append(
            f"  category_accuracy  {metrics['category_accuracy']:.5f}  (share of rows whose most probable "
            "category is right)"
        )
    width = max(len(c.name) for c in schema.columns)
    lines.append("  per column:")
    for c in schema.columns:
        if c.kind == "numeric":
            mae = metrics[f"{c.name}/mae"]
            share = mae / c.span if c.span else 0.0
            lines.append(f"    {c.name:{width}s}  mean abs. error {mae:.5g} ({share:.2%} of its range)")
        else:
            lines.append(f"    {c.name:{width}s}  accuracy {metrics[f'{c.name}/accuracy']:.4f}")
    return lines
