"""Pure interval arithmetic for bookings: windows, overlaps, peak port use. Values in, values out.

Every interval is half-open ``[start, end)`` (SPEC "Booking"): back-to-back windows do not overlap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, order=True)
class Window:
    """A half-open interval ``[start, end)`` of aware UTC datetimes."""

    start: datetime
    end: datetime

    def overlaps(self, other: Window) -> bool:
        return self.start < other.end and other.start < self.end

    def intersection(self, other: Window) -> Window:
        """The overlap of two overlapping windows."""
        return Window(max(self.start, other.start), min(self.end, other.end))


def booking_window(start: datetime, end: datetime, *, check_lead_minutes: int, teardown_minutes: int) -> Window:
    """``[start − check_lead, end + teardown)``: what a booking holds for a meeting ``[start, end)``."""
    return Window(start - timedelta(minutes=check_lead_minutes), end + timedelta(minutes=teardown_minutes))


def peak_ports(window: Window, uses: Iterable[tuple[Window, int]]) -> int:
    """Largest number of ports in use at any instant of ``window`` (SPEC rule 2: peak, not a count).

    ``uses`` are (window, ports) pairs; those not overlapping ``window`` are ignored. Sweep line:
    at equal instants releases come before acquisitions, which is what half-open windows mean.
    """
    events: list[tuple[datetime, int]] = []
    for use, ports in uses:
        if not use.overlaps(window):
            continue
        clipped = use.intersection(window)
        events.append((clipped.start, ports))
        events.append((clipped.end, -ports))
    events.sort(key=lambda e: (e[0], e[1]))
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def merge(windows: Iterable[Window]) -> list[Window]:
    """Sorted union of ``windows``; touching windows stay separate (they do not overlap)."""
    merged: list[Window] = []
    for window in sorted(windows):
        if merged and window.start < merged[-1].end:
            merged[-1] = Window(merged[-1].start, max(merged[-1].end, window.end))
        else:
            merged.append(window)
    return merged


def first_pairwise_overlap(windows: list[Window]) -> tuple[Window, Window] | None:
    """Two windows of ``windows`` that overlap each other, or ``None``."""
    ordered = sorted(windows)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.overlaps(b):
            return a, b
    return None
