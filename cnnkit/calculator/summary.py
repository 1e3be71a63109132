"""The numbers ``cnnkit summarize`` prints, as a plain data object.

Everything here is exact integer arithmetic on the graph; no array is ever allocated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..graph.network import Network
from .costs import IN_PLACE, layer_cost, receptive_field
from .memory import DTYPE_BYTES, OPTIMIZER_SLOTS, MemoryEstimate, estimate, executor_terms

SCHEMA = "cnnkit.summary/1"

COUNTING_NOTE = (
    "Activations count every tensor the forward pass creates, the input included; "
    "RELU, LRELU, ID and FLATTEN run in place (or are views) and add none, which is how the "
    "CS231n VGG table counts. MACs count conv and FC multiply-accumulates only. Training "
    "memory = batch x (activations + their gradients, input excluded) + parameters x "
    "(value + gradient + optimizer slots) + BN running statistics (the CS231n notes' "
    "formula, an upper bound). The executor estimate counts what cnnkit's engine really keeps "
    "for backward, the most gradients alive at once and its im2col tiles."
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
    common = dict(input_size=rows[0].activations, params=params, state=state, batch=batch,
                  dtype=dtype, optimizer=optimizer)
    memory = estimate(activations=activations, **common)
    executor = estimate(**common, **executor_terms(network, batch, dtype))
    return Summary(
        rows=rows, dtype=dtype, params=params, weights=sum(r.weights for r in rows),
        biases=sum(r.biases for r in rows), other_params=sum(r.other_params for r in rows),
        state=state, macs=sum(r.macs for r in rows), activations=activations, memory=memory,
        executor_memory=executor,
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
