"""cnnkit networks for other frameworks: ONNX models and PyTorch source.

    kinds.py         the table: per layer kind, its ONNX operators and its PyTorch source
    layout.py        channels-last (cnnkit) to channels-first (ONNX, PyTorch): FLATTEN's
                     neuron order and the reordering of weights
    arrays.py        a network's weights by export name, and back
    names.py         module paths shared by both exports (``layer1_1.n5_conv3_64``)
    onnx_export.py   ``to_onnx``, with the ``onnx`` package
    torch_export.py  ``to_pytorch`` (source + weights) and ``build_module`` (in memory)

Neither onnx nor torch is imported until a function that needs it runs.
"""

from .kinds import ExportError
from .onnx_export import to_onnx
from .torch_export import to_pytorch

__all__ = ["ExportError", "to_onnx", "to_pytorch"]
