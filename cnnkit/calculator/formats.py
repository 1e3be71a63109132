"""Plain-text renderings of a Summary for pipes and documents: JSON, CSV, Markdown, HTML."""

from __future__ import annotations

import csv
import html
import io
import json

from .memory import human_bytes
from .summary import LayerRow, Summary, short_count

CSV_COLUMNS = ("index", "name", "kind", "output", "activations", "weights", "biases",
               "other_params", "state", "params", "macs", "receptive_field")
# the columns of the documents (Markdown, HTML): the table `cnnkit summarize` prints
DOCUMENT_COLUMNS = ("#", "layer", "output", "activations", "weights", "biases", "BN", "MACs",
                    "RF")
RIGHT_ALIGNED = frozenset({"#", "activations", "biases", "BN", "MACs"})


def to_json(summary: Summary) -> str:
    return json.dumps(summary.to_dict(), indent=2)


def to_csv(summary: Summary) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in summary.to_rows():
        writer.writerow([row[column] for column in CSV_COLUMNS])
    return buffer.getvalue()


def _document_cells(row: LayerRow) -> list[str]:
    return [str(row.index), row.name, row.output, short_count(row.activations),
            row.weights_formula if row.weights else "0", f"{row.biases:,}",
            f"{row.other_params:,}", f"{row.macs:,}",
            f"{row.receptive_field[0]}x{row.receptive_field[1]}"]


def _document_totals(summary: Summary) -> list[str]:
    return ["", "total", "", f"{summary.activations:,}", f"{summary.weights:,}",
            f"{summary.biases:,}", f"{summary.other_params:,}", f"{summary.macs:,}", ""]


def to_markdown(summary: Summary) -> str:
    def row(cells) -> str:
        return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"

    totals = _document_totals(summary)
    totals[1] = "**total**"
    return "\n".join([
        row(DOCUMENT_COLUMNS),
        "|" + "|".join("---:" if c in RIGHT_ALIGNED else "---" for c in DOCUMENT_COLUMNS) + "|",
        *(row(_document_cells(layer)) for layer in summary.rows),
        row(totals),
    ]) + "\n"


def to_html(summary: Summary) -> str:
    """A table for notebooks (``Summary._repr_html_``): the layer rows, the totals as its
    footer, and the headline as its caption."""

    def tr(cells, tag: str) -> str:
        return "<tr>" + "".join(
            f'<{tag} style="text-align: {"right" if column in RIGHT_ALIGNED else "left"}">'
            f"{html.escape(cell)}</{tag}>" for column, cell in zip(DOCUMENT_COLUMNS, cells)
        ) + "</tr>"

    body = "\n".join(tr(_document_cells(row), "td") for row in summary.rows)
    memory = summary.memory
    return (
        f"<table>\n<caption>{html.escape(summary.headline)}</caption>\n"
        f"<thead>{tr(DOCUMENT_COLUMNS, 'th')}</thead>\n<tbody>\n{body}\n</tbody>\n"
        f"<tfoot>{tr(_document_totals(summary), 'th')}</tfoot>\n</table>\n"
        f"<p>training memory, batch {memory.batch}, {memory.optimizer}, {memory.dtype}: "
        f"{human_bytes(memory.total_bytes)} by the CS231n notes' formula, "
        f"{human_bytes(summary.executor_memory.total_bytes)} held by cnnkit's engine</p>\n"
    )
