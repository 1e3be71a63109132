"""Plain-text renderings of a Summary for pipes and documents: JSON, CSV, Markdown."""

from __future__ import annotations

import csv
import io
import json

from .summary import Summary, short_count

CSV_COLUMNS = ("index", "name", "kind", "output", "activations", "weights", "biases",
               "other_params", "state", "params", "macs", "receptive_field")


def to_json(summary: Summary) -> str:
    return json.dumps(summary.to_dict(), indent=2)


def to_csv(summary: Summary) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in summary.rows:
        rf = "x".join(map(str, row.receptive_field))
        writer.writerow([row.index, row.name, row.kind, row.output, row.activations, row.weights,
                         row.biases, row.other_params, row.state, row.params, row.macs, rf])
    return buffer.getvalue()


def to_markdown(summary: Summary) -> str:
    lines = ["| # | layer | output | activations | weights | biases | BN | MACs | RF |",
             "|---:|---|---|---:|---|---:|---:|---:|---|"]
    for row in summary.rows:
        lines.append(
            f"| {row.index} | {row.name} | {row.output} | {short_count(row.activations)} | "
            f"{row.weights_formula if row.weights else '0'} | {row.biases:,} | "
            f"{row.other_params:,} | {row.macs:,} | {row.receptive_field[0]}x"
            f"{row.receptive_field[1]} |"
        )
    lines.append(
        f"| | **total** | | {summary.activations:,} | {summary.weights:,} | "
        f"{summary.biases:,} | {summary.other_params:,} | {summary.macs:,} | |"
    )
    return "\n".join(lines) + "\n"
