"""cnnkit: write down a convolutional network, know exactly what it costs, train it and
look inside it.

    >>> import cnnkit
    >>> net = cnnkit.parse("INPUT 32x32x3 -> [CONV3-64 -> RELU]*2 -> POOL2 -> FC-10")
    >>> net.summary(batch=32).params
    1675082
"""

from .graph.build import parse, parse_shape
from .graph.network import Network, Node, Shape
from .language.errors import SpecError

__all__ = ["parse", "parse_shape", "Network", "Node", "Shape", "SpecError", "load"]
__version__ = "0.1.0"


def load(path, **options) -> Network:
    """Parse a spec file (``options`` as for ``parse``)."""
    with open(path, encoding="utf-8") as handle:
        return parse(handle.read(), filename=str(path), **options)
