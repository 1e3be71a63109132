"""cnnkit networks for other frameworks: ONNX models and PyTorch source.

    kinds.py         the table: per layer kind, its ONNX operators and its PyTorch source
    layout.py        channels-last (cnnkit) to channels-first (ONNX, PyTorch): FLATTEN's
                     neuron order and the reordering of weights
    arrays.py        a network's weights by export name, and back
    names.py         module paths shared by both exports (``layer1_1.n5_conv3_64``)
    onnx_export.py   ``to_onnx``, with the ``onnx`` package
    torch_export.py  ``to_pytorch`` (source + weights) and ``build_module`` (in memory)
    onnx_import.py   ``from_onnx``: an ONNX model as spec text, network and weights, through
                     onnx_load.py (the file, read without running it), onnx_readers.py
                     (per layer kind, the operators it is read from) and structure.py
                     (branches as nested RES/CAT, repeats, named blocks)

Neither onnx nor torch is imported until a function that needs it runs.
"""

from .kinds import ExportError
from .onnx_export import to_onnx
from .onnx_import import from_onnx
from .onnx_load import OnnxImportError
from .torch_export import to_pytorch

__all__ = ["ExportError", "OnnxImportError", "from_onnx", "to_onnx", "to_pytorch"]
