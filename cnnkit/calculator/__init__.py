"""The calculator: shapes in, exact costs out (parameters, MACs, memory, receptive field)."""

from .memory import MemoryEstimate, human_bytes, largest_batch, parse_bytes
from .summary import LayerRow, Summary, short_count, summarize

__all__ = ["LayerRow", "MemoryEstimate", "Summary", "human_bytes", "largest_batch",
           "parse_bytes", "short_count", "summarize"]
