"""Rolling former units into their successor (issue 15, ``rollup=successor`` of the usage reports).

A merge (``endpoints.unit_history``) moves rooms to the successor; the reports keep the days before it
with the former units (each site counts in the unit its room was in at the occurrence's start). With
``rollup=successor`` a unit report adds each former unit's rows into its current successor's (following
chains: A merged into B, B into S: A's rows go to S): the successor's row for a period before the merge
is the sum of its own and the former units' rows, figure by figure, as each unit reported them then (a
meeting two former units both took part in counts once in each, so twice in the sum). Rates are
recomputed from the summed parts by the report. The totals are not rows: they stay each occurrence once.
"""

from __future__ import annotations

from typing import Any


def predecessors(final: dict[int, int], unit_ids: frozenset[int]) -> frozenset[int]:
    """The units (ids) whose current successor (``final``: ``unit_history.successors``) is in ``unit_ids``."""
    return frozenset(u for u, s in final.items() if s in unit_ids)


def fold(rows: dict[tuple[int, int], dict[str, Any]], final: dict[int, int]) -> dict[tuple[int, int], dict[str, Any]]:
    """``{(unit id, bucket key): raw figures}`` with every former unit's rows added into its successor's.
    Figures add up (``port_peak`` does not occur in unit reports); a figure None in every part stays None."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for (key, b_key), raw in sorted(rows.items()):
        into = out.setdefault((final.get(key, key), b_key), {})
        for name, value in raw.items():
            if value is None:
                into.setdefault(name, None)
            else:
                into[name] = (into.get(name) or 0) + value
    return out
