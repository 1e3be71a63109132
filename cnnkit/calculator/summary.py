"""The numbers ``cnnkit summarize`` prints, as a plain data object.

Everything here is exact integer arithmetic on the graph; no array is ever allocated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..graph.network import Network
from .costs import IN_PLACE, layer_cost, receptive_field
from .memory import (
    DTYPE_BYTES,
    OPTIMIZER_SLOTS,
    MemoryEstimate,
    estimate,
    executor_terms,
    largest_batch,
)

SCHEMA = "cnnkit.summary/1"

COUNTING_NOTE = (
    "Activations count every tensor the forward pass creates, the input included; "
    "RELU, LRELU, ID and FLATTEN run in place (or are views) and add none, which is how the "
    "CS231n VGG table counts. MACs count conv and FC multiply-accumulates only. Training "
    "memory = batch x (activations + their gradients, input excluded) + parameters x "
    "(value + gradient + optimizer slots) + BN running statistics (the CS231n notes' "
    "formula, an upper bound). The executor estimate counts what cnnkit's engine really keeps "
    "for backward, the most gradients alive at once and its convolutions' work arrays "
    "(im2col or Winograd tiles)."
)


@dataclass
class LayerRow:
    index: int
    name: str
    kind: str
    output: str  # "224x224x64", or "4096" for a flat vector
    shape: tuple[int, int, int]  # (H, W, C)
    activations: int  # output values per image
    in_place: bool  # True when the output reuses its input's memory
    weights: int
    biases: int
    other_params: int
    state: int
    params: int
    macs: int
    receptive_field: tuple[int, int]
    inputs: tuple[int, ...]
    weights_formula: str = ""
    macs_formula: str = ""
    explain: list[str] = field(default_factory=list)


@dataclass
class Summary:
    rows: list[LayerRow]
    dtype: str
    params: int
    weights: int
    biases: int
    other_params: int
    state: int
    macs: int
    activations: int  # per image, as counted (see COUNTING_NOTE)
    memory: MemoryEstimate  # the CS231n notes' formula
    executor_memory: MemoryEstimate  # what cnnkit's own executor holds (what `train` measures)
    name: str = ""  # the spec's file name, for titles and repr ("" when it has none)

    @property
    def activation_bytes(self) -> int:
        """Forward activations of one image in the chosen dtype."""
        return self.activations * DTYPE_BYTES[self.dtype]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.rows[0].shape

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return self.rows[-1].shape

    @property
    def headline(self) -> str:
        """One line that tells networks apart: name, shapes, layers, parameters, MACs."""
        name = f"{self.name}: " if self.name else ""
        return (f"{name}{self.rows[0].output} -> {self.rows[-1].output}, {len(self.rows)} layers, "
                f"{self.params:,} params, {self.macs:,} MACs")

    def __repr__(self) -> str:
        return f"<Summary {self.headline}>"

    def __rich__(self):
        """The table and totals that ``cnnkit summarize`` prints, fitted to the console."""
        from .render import SummaryView

        return SummaryView(self)

    def _repr_html_(self) -> str:
        """Jupyter shows the summary as an HTML table."""
        from .formats import to_html

        return to_html(self)

    def to_rows(self) -> list[dict]:
        """One flat dict per layer (the CSV's columns, plus ``in_place``), for analysis."""
        return [{"index": r.index, "name": r.name, "kind": r.kind, "output": r.output,
                 "activations": r.activations, "in_place": r.in_place, "weights": r.weights,
                 "biases": r.biases, "other_params": r.other_params, "state": r.state,
                 "params": r.params, "macs": r.macs,
                 "receptive_field": "x".join(map(str, r.receptive_field))}
                for r in self.rows]

    def to_pandas(self):
        """``to_rows`` as a pandas DataFrame indexed by ``#``; pandas is optional, so it is
        imported here and only here."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Summary.to_pandas needs pandas (pip install pandas); "
                              "Summary.to_rows gives the same rows as plain dicts") from None
        return pandas.DataFrame(self.to_rows()).set_index("index")

    def to_dict(self) -> dict:
        """The stable JSON form (documented in docs/json-schema.md)."""
        return {
            "schema": SCHEMA,
            "dtype": self.dtype,
            "layers": [
                {**asdict(row), "shape": list(row.shape), "inputs": list(row.inputs),
                 "receptive_field": list(row.receptive_field)}
                for row in self.rows
            ],
            "totals": {
                "params": self.params,
                "weights": self.weights,
                "biases": self.biases,
                "other_params": self.other_params,
                "state": self.state,
                "macs": self.macs,
                "activations_per_image": self.activations,
                "activation_bytes_per_image": self.activation_bytes,
            },
            "training_memory": self.memory.to_dict(),
            "executor_memory": self.executor_memory.to_dict(),
            "counting": COUNTING_NOTE,
        }


def summarize(network: Network, batch: int = 1, dtype: str = "float32",
              optimizer: str = "sgd") -> Summary:
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_BYTES)}")
    if optimizer not in OPTIMIZER_SLOTS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZER_SLOTS)}")
    if batch < 1:
        raise ValueError("batch must be at least 1")
    rows: list[LayerRow] = []
    fields = []
    for node in network.nodes:
        in_shapes = [network.nodes[i].out for i in node.inputs]
        cost = layer_cost(node, in_shapes)
        fields.append(receptive_field(node, [fields[i] for i in node.inputs], in_shapes))
        rows.append(LayerRow(
            index=node.index, name=node.name, kind=node.kind, output=str(node.out),
            shape=(node.out.h, node.out.w, node.out.c), activations=node.out.size,
            in_place=node.kind in IN_PLACE, weights=cost.weights, biases=cost.biases,
            other_params=cost.other, state=cost.state, params=cost.params, macs=cost.macs,
            receptive_field=fields[-1].size, inputs=node.inputs,
            weights_formula=cost.weights_formula, macs_formula=cost.macs_formula,
            explain=list(node.explain),
        ))
    activations = sum(r.activations for r in rows if not r.in_place)
    params = sum(r.params for r in rows)
    state = sum(r.state for r in rows)
    per_image = dict(input_size=rows[0].activations, params=params, state=state, dtype=dtype,
                     optimizer=optimizer)
    return Summary(
        rows=rows, dtype=dtype, params=params, weights=sum(r.weights for r in rows),
        biases=sum(r.biases for r in rows), other_params=sum(r.other_params for r in rows),
        state=state, macs=sum(r.macs for r in rows), activations=activations,
        memory=estimate(activations=activations, batch=batch, **per_image),
        executor_memory=_executor_estimate(network, batch, per_image),
        name="" if network.filename == "<spec>" else network.filename,
    )


def _executor_estimate(network: Network, batch: int, per_image: dict) -> MemoryEstimate:
    return estimate(batch=batch, **per_image,
                    **executor_terms(network, batch, per_image["dtype"]))


@dataclass(frozen=True)
class BatchFit:
    """The largest training batch a memory budget holds, by each estimate (0: not one)."""

    limit_bytes: int
    formula_batch: int  # by the CS231n notes' formula: the upper bound, which decides
    executor_batch: int  # by what cnnkit's engine holds, as `cnnkit train` checks it

    def to_dict(self) -> dict:
        return {"limit_bytes": self.limit_bytes, "largest_batch": self.formula_batch,
                "executor_largest_batch": self.executor_batch}


def fit_batch(network: Network, limit_bytes: int, dtype: str = "float32",
              optimizer: str = "sgd") -> BatchFit:
    """The largest batches whose training memory fits ``limit_bytes``.  Only the memory
    terms are recomputed per batch tried, not the whole summary."""
    one = summarize(network, dtype=dtype, optimizer=optimizer)
    per_image = dict(input_size=one.rows[0].activations, params=one.params, state=one.state,
                     dtype=dtype, optimizer=optimizer)
    return BatchFit(
        limit_bytes,
        largest_batch(limit_bytes, lambda batch: estimate(
            activations=one.activations, batch=batch, **per_image).total_bytes),
        largest_batch(limit_bytes, lambda batch: _executor_estimate(
            network, batch, per_image).total_bytes),
    )


def short_count(n: int) -> str:
    """Two significant digits with a K/M/G suffix, as the CS231n table writes 3.2M and 150K."""
    if n < 10_000:
        return str(n)
    rounded = round(n, 2 - len(str(n)))
    for suffix, scale in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if rounded >= scale:
            return f"{rounded / scale:.3g}{suffix}"
    return str(n)
