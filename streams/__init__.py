"""Sources of readings: CSV replay, live lines, circles, synthetic heart rate."""
from streams.batch import Batch, Reject, SourceError

__all__ = ["Batch", "Reject", "SourceError"]
