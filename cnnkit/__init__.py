"""cnnkit: write down a convolutional network, know exactly what it costs, train it and
look inside it.

    >>> import cnnkit
    >>> net = cnnkit.parse("INPUT 32x32x3 -> [CONV3-64 -> RELU]*2 -> POOL2 -> FC-10")
    >>> net.summary(batch=32).params
    202570
"""

from .graph.build import load, parse, parse_shape
from .graph.network import Network, Node, Shape
from .language.errors import SpecError

__all__ = ["parse", "parse_shape", "Network", "Node", "Shape", "SpecError", "load", "train",
           "resume", "load_run", "Run"]
__version__ = "0.1.0"
# training needs NumPy, which `import cnnkit` (and so `cnnkit summarize`) must not import
_TRAINING_API = frozenset({"train", "resume", "load_run", "Run"})


def __getattr__(name: str):
    if name in _TRAINING_API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


