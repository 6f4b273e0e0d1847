"""The record schema: what one measurement is, typed, and what makes a read-back row usable.

A :class:`Record` is one implementation x workload x timing method: its :class:`Status`, its
latency (``ok`` only, finite and positive), and every other figure in ``fields`` (the
statistics, kernel set, digests, tags). :func:`decodekit.measure.measure` returns one; the
store (:mod:`decodekit.records`) stamps it with the run id, time and environment and writes
it as a JSON line whose keys are :meth:`Record.row`. Rows read back are checked by
:func:`validate` (numbers coerced, a bad row named and skipped by the reader).

>>> r = Record(impl="best", method="cupti-cold", status="ok", latency_us=2.5, uuid="u",
...            batch_size=1, fields={"spread": 0.01})
>>> r.status is Status.OK, r.row()["spread"], r.replace(note="x").note
(True, 0.01, 'x')
>>> Record(impl="best", method="cupti-cold", status="ok", latency_us=float("nan"))
Traceback (most recent call last):
ValueError: argument 'latency_us': expected a finite positive latency for status ok, got nan
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any

# 3: a floor row names its floor in ``floor`` and its timing method in ``method`` (2 and 1
# named the floor in ``method`` and the method in ``timing``); 2: a run header line holds
# the environment once; 1: every row carries it. Rows of 1 and 2 are read as 3 (upgrade).
SCHEMA = 3
REQUIRED = ("impl", "uuid", "batch_size", "method", "latency_us", "status", "gpu", "timestamp")
_CORE = (
    "impl", "impl_kind", "floor", "uuid", "batch_size", "method", "status", "latency_us", "note",
)  # fmt: skip
FLOORS = ("copy-floor", "row-copy-floor", "copy-peak", "empty-kernel", "host-bare-cupy")
METHODS_OF_2 = ("cupti-cold", "events-cold", "graph-hot", "host-dispatch", "wall", "fib-0.1.2")


class Status(str, Enum):
    """A record's outcome; only ``ok`` carries a latency."""

    OK = "ok"
    CHECK_FAILED = "check-failed"  # the fp64 oracle check failed: no timing
    COMPILE_FAILED = "compile-failed"  # a tuning candidate that does not build
    UNAVAILABLE = "unavailable"  # the method or the implementation cannot run here
    UNSUPPORTED = "unsupported"  # the implementation has no such calling contract
    ERROR = "error"  # the timing raised; the note says what


STATUSES = tuple(s.value for s in Status)
LEADING = REQUIRED + (
    "workload",
    "preset",
    "statistic",
    "mean_us",
    "p10_us",
    "p90_us",
    "min_us",
    "spread",
    "noisy",
    "bytes",
    "gbps",
    "pct_copy",
    "pct_row_copy",
    "pct_peak",
    "run_id",
)


def upgrade(row: dict) -> dict:
    """A row of schema 1 or 2 as schema 3, in place: a floor row's ``method`` (the floor's
    name) moves to ``floor`` and its ``timing`` (the method) to ``method``.

    >>> upgrade({"impl_kind": "floor", "method": "copy-floor", "timing": "cupti-cold"})
    {'impl_kind': 'floor', 'method': 'cupti-cold', 'floor': 'copy-floor'}
    """
    if isinstance(row, dict) and row.get("impl_kind") == "floor" and "floor" not in row:
        name, timing = row.get("method"), row.pop("timing", None) or row.get("method")
        if name == "host-steady-bare-cupy":  # schema 2's host overhead rows
            name, timing = "host-bare-cupy", "host-steady"
        elif name in METHODS_OF_2 and row.get("impl") == "empty-kernel":
            name = "empty-kernel"  # its host-dispatch row, named by the method alone
        row["floor"], row["method"] = name, timing
    return row


def validate(row, stamped: bool = True) -> str | None:
    """Why a read-back row cannot be used (None if it can); numbers are coerced and an older
    schema's row upgraded (:func:`upgrade`) in place.

    An ``ok`` row needs a finite positive latency; any row a parseable timestamp, a batch
    size >= 1, a GPU name, and the :data:`REQUIRED` fields (``stamped`` False: a record not
    yet written, without the store's ``gpu`` and ``timestamp``).

    >>> validate({"impl": "k", "uuid": "u", "batch_size": "4", "method": "m", "status": "ok",
    ...           "latency_us": "2.5", "gpu": "G", "timestamp": "2026-01-01T00:00:00+00:00"})
    >>> validate([1, 2])
    'a JSON list, not a record object'
    """
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__.replace('dict', 'object')}, not a record object"
    upgrade(row)
    once = row.get("impl_kind") == "floor"  # launch and peak floors: once per run, no B
    skip = (
        ("latency_us",)
        + (("uuid", "batch_size") if once else ())
        + (() if stamped else ("gpu", "timestamp"))
    )
    need = [k for k in REQUIRED if k not in skip]
    missing = [k for k in need if k not in row]
    if missing:
        return f"missing {', '.join(missing)}"
    if row["status"] not in STATUSES:
        return f"status {row['status']!r} is not one of {', '.join(STATUSES)}"
    if stamped and (not isinstance(row["gpu"], str) or not row["gpu"].strip()):
        return f"gpu {row['gpu']!r} is not a GPU name"
    try:
        if stamped:
            datetime.fromisoformat(str(row["timestamp"]).replace("Z", "+00:00"))
    except ValueError:
        return f"timestamp {row['timestamp']!r} does not parse"
    b = row.get("batch_size")
    if once and (b is None or (isinstance(b, float) and math.isnan(b))):
        row["batch_size"] = None  # a once-per-run floor has no batch size
    else:
        try:
            b = float(row["batch_size"])
        except (TypeError, ValueError):
            return f"batch_size {row['batch_size']!r} is not a number"
        if not math.isfinite(b) or b < 1 or b != int(b):
            return f"batch_size {row['batch_size']!r} is not an int >= 1"
        row["batch_size"] = int(b)
    lat = row.get("latency_us")
    if row["status"] == "ok":
        try:
            lat = float(lat)
        except (TypeError, ValueError):
            return f"status ok with latency_us {row.get('latency_us')!r}, not a number"
        if not math.isfinite(lat) or lat <= 0:
            return f"status ok with latency_us {lat!r}, not finite and positive"
        row["latency_us"] = lat
    elif lat is not None:
        if isinstance(lat, float) and math.isnan(lat):  # NaN written by another tool: none
            row["latency_us"] = None
        else:
            return f"status {row['status']!r} with a latency ({lat!r})"
    return None


@dataclass(frozen=True)
class Record:
    """One measurement, as :func:`decodekit.measure.measure` returns it (not yet stamped with
    run, time and environment: the store adds those)."""

    impl: str
    method: str  # the timing method that ran (decodekit.measure.timing)
    status: Status
    latency_us: float | None = None  # the headline statistic; only an ok record has one
    uuid: str | None = None
    batch_size: int | None = None
    impl_kind: str | None = None  # kernel, baseline, adhoc, floor
    floor: str | None = None  # floor rows: which floor (FLOORS); method is what timed it
    note: str | None = None  # why not ok, or a fallback taken
    fields: Mapping[str, Any] = field(default_factory=dict)  # every other figure

    def __post_init__(self):
        try:
            object.__setattr__(self, "status", Status(self.status))
        except ValueError:
            raise ValueError(
                f"argument 'status': expected one of {', '.join(STATUSES)}, got {self.status!r}"
            ) from None
        lat = self.latency_us
        if self.status is Status.OK:
            if not isinstance(lat, (int, float)) or not math.isfinite(lat) or lat <= 0:
                raise ValueError(
                    "argument 'latency_us': expected a finite positive latency for status ok, "
                    f"got {lat!r}"
                )
        elif lat is not None:
            raise ValueError(
                f"argument 'latency_us': status {self.status.value} carries no latency, got {lat!r}"
            )
        clash = set(_CORE) & set(self.fields)
        if clash:
            raise ValueError(f"argument 'fields': {sorted(clash)} are Record attributes")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def get(self, key: str, default=None):
        """An attribute or a field by name (``rec.get("spread")``)."""
        if key in _CORE:
            return getattr(self, key)
        return self.fields.get(key, default)

    def replace(self, **changes) -> Record:
        """A copy with ``changes``: attributes by name, anything else merged into ``fields``."""
        core = {k: v for k, v in changes.items() if k in _CORE}
        more = {k: v for k, v in changes.items() if k not in _CORE}
        return (
            replace(self, **core, fields={**self.fields, **more}) if more else replace(self, **core)
        )

    def row(self) -> dict:
        """The flat dict the store writes (``status`` as its string)."""
        out = {k: getattr(self, k) for k in _CORE if k != "floor" or self.floor is not None}
        out["status"] = self.status.value
        return {**out, **self.fields}

    @classmethod
    def from_row(cls, row: Mapping) -> Record:
        """The record of a row (a written line, or a dict built by hand); raises ValueError
        naming what is wrong (:func:`validate`)."""
        row = dict(row)
        why = validate(row, stamped=False)
        if why:
            raise ValueError(f"argument 'row': not a valid record ({why})")
        core = {k: row.pop(k, None) for k in _CORE}  # validate upgraded it
        return cls(**core, fields=row)
