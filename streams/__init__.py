"""Sources of readings: CSV replay, Fitbit JSON, Apple Health XML, WFDB, FHIR, TCX, FIT, live lines,
circles, synthetic heart rate.

Each source is an iterable of Batch; nothing is read or generated until iteration starts.

>>> import streams
>>> [len(b) for b in streams.Circles(n=2500)]
[1000, 1000, 500]
"""
from streams.batch import Batch, Reject, SourceError
from streams.apple_health import AppleHealthXml
from streams.circles import Circles
from streams.fhir import FhirObservations
from streams.fit import FitRecords
from streams.fitbit import FitbitJson
from streams.formats import detect, open_file
from streams.lines import LineParser
from streams.live import LiveLines
from streams.replay import CsvReplay
from streams.sample import Sample, sample_path
from streams.synthetic import SyntheticHeartRate
from streams.tcx import TcxTrackpoints
from streams.wfdb_record import WfdbRecord

__all__ = ["Batch", "Reject", "SourceError", "LineParser", "CsvReplay", "LiveLines", "Circles",
           "SyntheticHeartRate", "Sample", "sample_path", "FitbitJson", "AppleHealthXml", "WfdbRecord",
           "FhirObservations", "TcxTrackpoints", "FitRecords", "detect", "open_file"]
