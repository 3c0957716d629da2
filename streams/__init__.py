"""Sources of readings: CSV replay, Fitbit JSON, Apple Health XML, live lines, circles, synthetic heart rate.

Each source is an iterable of Batch; nothing is read or generated until iteration starts.

>>> import streams
>>> [len(b) for b in streams.Circles(n=2500)]
[1000, 1000, 500]
"""
from streams.batch import Batch, Reject, SourceError
from streams.apple_health import AppleHealthXml
from streams.circles import Circles
from streams.fitbit import FitbitJson
from streams.formats import detect, open_file
from streams.lines import LineParser
from streams.live import LiveLines
from streams.replay import CsvReplay
from streams.sample import Sample, sample_path
from streams.synthetic import SyntheticHeartRate

__all__ = ["Batch", "Reject", "SourceError", "LineParser", "CsvReplay", "LiveLines", "Circles",
           "SyntheticHeartRate", "Sample", "sample_path", "FitbitJson", "AppleHealthXml", "detect",
           "open_file"]
