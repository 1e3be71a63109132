"""The summary as rich renderables fitted to the console's width: the layer table, the
arithmetic behind each row, the totals and the legend (``cnnkit summarize``, notebooks).

A cut number reads as a wrong number, so the table never cuts one.  When it is wider than
the console it gives up, in this order: the weight formulas, the lines between columns, the
block paths repeated in every name (shown once, as indented headings, instead), the split
of the parameters into weights, biases and BN, and the totals under the columns (the lines
below the table give both).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from .memory import human_bytes, unit_meaning
from .summary import COUNTING_NOTE, BatchFit, LayerRow, Summary, short_count


@dataclass(frozen=True)
class Layout:
    formulas: bool = False  # weights as "(3*3*64)*128 = 73,728" rather than "73,728"
    boxed: bool = False  # lines around the table and between its columns
    tree: bool = False  # block paths as indented headings instead of in every name
    merged: bool = False  # one params column instead of weights, biases and BN
    footer: bool = True  # the totals under the columns (they are in the lines below too)


# richest first; the first one that fits the width is printed
LAYOUTS = (Layout(formulas=True, boxed=True), Layout(boxed=True), Layout(), Layout(tree=True),
           Layout(tree=True, merged=True), Layout(tree=True, merged=True, footer=False))


@dataclass
class SummaryView:
    """What ``cnnkit summarize`` prints: the table, the arithmetic with ``explain``, the
    totals (with the answer to ``--max-memory`` as ``fit``), the legend with ``legend``."""

    summary: Summary
    fit: BatchFit | None = None
    limit_text: str = ""  # the memory budget as the user wrote it, e.g. "2GB"
    explain: bool = False
    legend: bool = False

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.summary.name:
            yield Text(self.summary.name, style="bold")
        table = fitted_table(self.summary, options.max_width)
        # wider than the console even at its narrowest: the terminal wraps the lines, which
        # keeps every digit, where rich would cut the columns
        yield from console.render(table.render(), options.update_width(
            max(options.max_width, table.width)))
        if self.explain:
            yield explanations(self.summary)
        yield from labelled_lines(console, options.max_width,
                                  totals(self.summary, self.fit, self.limit_text))
        if self.legend:
            yield Text(f"\n{COUNTING_NOTE}", style="dim")


@dataclass
class LayerTable:
    """The cells of the layer table in one layout, measured before rich draws any of it."""

    layout: Layout
    headers: list[str]
    footers: list[str]
    rows: list[list[Text]]  # a block heading is a row of two cells: "" and its name

    @property
    def width(self) -> int:
        """Columns of the table drawn with nothing wrapped or cut: the cells, plus the box
        lines and a space each side of a cell, or two spaces between compact columns."""
        widths = [max(len(h), len(f)) for h, f in zip(self.headers, self.footers)]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], cell.cell_len)
        gaps = 3 * len(widths) + 1 if self.layout.boxed else 2 * (len(widths) - 1)
        return sum(widths) + gaps

    def render(self) -> Table:
        boxed = self.layout.boxed
        table = Table(header_style="bold", show_footer=self.layout.footer, footer_style="bold",
                      box=box.HEAVY_HEAD if boxed else box.SIMPLE, show_edge=boxed,
                      pad_edge=boxed, padding=(0, 1) if boxed else (0, 1, 0, 0))
        for header, footer in zip(self.headers, self.footers):
            table.add_column(header, footer=footer if self.layout.footer else "", no_wrap=True,
                             justify="left" if header in ("layer", "output") else "right")
        for row in self.rows:
            table.add_row(*row)
        return table


def fitted_table(summary: Summary, width: int) -> LayerTable:
    """The richest layout of the table that fits ``width``, else the narrowest."""
    for layout in LAYOUTS:
        table = layer_table(summary, layout)
        if table.width <= width:
            break
    return table


def layer_table(summary: Summary, layout: Layout) -> LayerTable:
    values = _value_columns(summary, layout)
    rows = []
    for headings, name, row in _named_rows(summary.rows, layout.tree):
        rows += [[Text(""), Text(heading, style="bold")] for heading in headings]
        rows.append([Text(str(row.index)), Text(name), Text(row.output),
                     *(Text(cell(row), style=style(row)) for _, _, cell, style in values)])
    footers = ["", "total", ""] + [footer for _, footer, _, _ in values]
    return LayerTable(layout, ["#", "layer", "output"] + [header for header, *_ in values],
                      footers if layout.footer else [""] * len(footers), rows)


def _value_columns(summary: Summary, layout: Layout) -> list:
    """(header, footer, cell text of a row, cell style of a row) of the columns right of
    ``output``; activations that reuse their input's memory are dimmed."""
    def count(attribute: str):
        return lambda row: f"{getattr(row, attribute):,}"

    def plain(row) -> str:
        return ""

    if layout.merged:
        parameters = [("params", f"{summary.params:,}", count("params"), plain)]
    else:
        weights = (lambda row: row.weights_formula if row.weights else "0") if layout.formulas \
            else count("weights")
        parameters = [("weights", f"{summary.weights:,}", weights, plain),
                      ("biases", f"{summary.biases:,}", count("biases"), plain)]
        if summary.other_params:
            parameters.append(("BN", f"{summary.other_params:,}", count("other_params"), plain))
    return [
        ("activations", short_count(summary.activations),
         lambda row: short_count(row.activations), lambda row: "dim" if row.in_place else ""),
        *parameters,
        ("MACs", f"{summary.macs:,}", count("macs"), plain),
        ("RF", "", lambda row: "x".join(map(str, row.receptive_field)), plain),
    ]


def _named_rows(rows: list[LayerRow], tree: bool):
    """(block headings to print before the row, the row's name, the row).  As a tree, a
    name "layer1.1/project64.1/shortcut/CONV1-256" is its last part, indented under the
    headings of the blocks it is in, each printed where that block begins."""
    previous: list[str] = []
    for row in rows:
        if not tree:
            yield [], row.name, row
            continue
        *path, leaf = row.name.split("/")
        shared = 0
        while shared < min(len(path), len(previous)) and path[shared] == previous[shared]:
            shared += 1
        headings = ["  " * depth + path[depth] for depth in range(shared, len(path))]
        previous = path
        yield headings, "  " * len(path) + leaf, row


def explanations(summary: Summary) -> Group:
    """Each row's arithmetic: sizes, weights, biases, BN, MACs and activations."""
    lines = [Text("\nHow each number comes about", style="bold")]
    for row in summary.rows:
        parts = list(row.explain)
        if row.weights:
            parts.append(f"weights {row.weights_formula}")
        if row.biases:
            parts.append(f"biases {row.biases:,}")
        if row.other_params:
            parts.append(f"BN {row.weights_formula or row.other_params}")
        if row.macs:
            parts.append(f"MACs {row.macs_formula}")
        if row.kind != "input":
            parts.append(f"activations {'*'.join(map(str, row.shape))} = {row.activations:,}"
                         + (" (in place)" if row.in_place else ""))
        if parts:
            lines.append(Text.assemble((f"{row.index:>3} {row.name}", "cyan"), ": ",
                                       "; ".join(parts)))
    return Group(*lines)


def decimal(n: int) -> str:
    """15,470,264,320 -> "15.5 G": three significant digits with an SI prefix."""
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {prefix}"
    return str(n)


def labelled_lines(console: Console, width: int, lines: list[tuple[str, str]]):
    """"label   text" lines (text in rich markup) whose text wraps under itself."""
    indent = max(len(label) for label, _ in lines) + 2
    for label, markup in lines:
        wrapped = Text.from_markup(markup).wrap(console, max(width - indent, 20))
        for i, line in enumerate(wrapped):
            line.rstrip()
            yield Text.assemble(((label if i == 0 else "").ljust(indent), "bold"), line)


def totals(summary: Summary, fit: BatchFit | None = None,
           limit_text: str = "") -> list[tuple[str, str]]:
    """The totals as (label, text in rich markup), one line each."""
    m, engine = summary.memory, summary.executor_memory
    trainable = (f"weights {summary.weights:,} + biases {summary.biases:,}"
                 + (f" + BN {summary.other_params:,}" if summary.other_params else ""))
    lines = [
        ("parameters", f"{summary.params:,} ({trainable})"
         + (f"; BN running statistics {summary.state:,} (state, not trained)"
            if summary.state else "")),
        ("MACs", f"{summary.macs:,} per image ({decimal(summary.macs)})"),
        ("activations", f"{summary.activations:,} per image = "
         f"{human_bytes(summary.activation_bytes)} in {summary.dtype}"),
        ("training", f"batch {m.batch}, {m.optimizer}, {m.dtype}: activations "
         f"{human_bytes(m.activation_bytes)} + their gradients {human_bytes(m.gradient_bytes)} "
         f"+ parameters/gradients/optimizer {human_bytes(m.parameter_bytes)} = "
         f"[bold]{human_bytes(m.total_bytes)}[/]"),
        ("executor", f"what cnnkit's engine holds at its peak for this batch: "
         f"{human_bytes(engine.total_bytes)} (kept activations "
         f"{human_bytes(engine.activation_bytes)}, gradients {human_bytes(engine.gradient_bytes)}, "
         f"convolution workspace {human_bytes(engine.workspace_bytes)})"),
    ]
    if fit is not None:
        lines.append(("max memory", max_memory_answer(fit, limit_text)))
    return lines


def max_memory_answer(fit: BatchFit, limit_text: str) -> str:
    """The answer to ``--max-memory``: the budget in bytes and what its unit means, the
    largest batch by the notes' formula (which decides: the training line is at that batch)
    and, for comparison, by cnnkit's engine estimate (which ``cnnkit train`` checks)."""
    meaning = unit_meaning(limit_text)
    budget = (f"{limit_text} = {fit.limit_bytes:,} bytes = {human_bytes(fit.limit_bytes)}"
              + (f" ({meaning})" if meaning else ""))
    engine = ("cnnkit's engine estimate (the executor line, which `cnnkit train` checks): "
              + (f"batch {fit.executor_batch}" if fit.executor_batch else "not one image either"))
    if not fit.formula_batch:
        return (f"{budget}: [bold]not even one image fits[/] by the notes' formula, which "
                f"decides (the training line is at batch 1); {engine}")
    return (f"{budget}: largest batch [bold]{fit.formula_batch}[/] by the notes' formula, "
            f"which decides (the training line above); {engine}")
