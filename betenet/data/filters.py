"""Dataset filters of the paper's data preparation: dynamically unstable entries, negative or
non-finite spectra and duplicate structures. Each filter returns the kept ids and a report that
gives every rejected id a reason.

Filters read plain records (dicts, :data:`Record`), one per dataset entry, with optional keys:

- ``id``: any hashable; defaults to the entry's position in the list;
- ``structure``: a pymatgen ``Structure`` (used by :func:`duplicates`);
- ``a2f``: the Eliashberg function, an array of any shape (:func:`negative_a2f`,
  :func:`nan_spectra`);
- ``min_phonon_freq_meV``: the lowest phonon frequency over the q-points computed, in meV, with
  imaginary modes written as negative frequencies (:func:`unstable`).

A filter whose key is missing (or ``None``) for an entry keeps it and counts it as
"not applicable". Paper (Methods): of 1265 converged calculations, 399 had imaginary modes beyond
1 meV, 38 negative a2F and 4 NaN values in QE's files.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from betenet.errors import InputError

#: What a filter reads of a dataset entry: a dict with the keys of the module docstring.
Record = dict

DEFAULT_UNSTABLE_THRESHOLD_MEV = 1.0
# Negative a2F counts as real when below -NEGATIVE_A2F_TOL * max|a2F|. Not from the paper (which
# gives no tolerance): 1e-3 ignores the rounding of spectra written with a few significant digits
# and catches the smearing artefacts that make a2F visibly negative.
DEFAULT_NEGATIVE_A2F_TOL = 1e-3


@dataclass
class FilterStep:
    """Outcome of one filter: ``kept`` ids, ``rejected`` ``{id: reason}``, and the ids it did not
    apply to (kept, their key was missing)."""

    name: str
    n_in: int
    kept: list
    rejected: dict = field(default_factory=dict)
    not_applicable: list = field(default_factory=list)
    settings: str = ""

    @property
    def count(self) -> int:
        """Number of rejected entries."""
        return len(self.rejected)

    def line(self) -> str:
        """One-line summary: ``name (settings): N in, R rejected, K kept, A not applicable``."""
        head = f"{self.name} ({self.settings})" if self.settings else self.name
        return (f"{head}: {self.n_in} in, {self.count} rejected, {len(self.kept)} kept, "
                f"{len(self.not_applicable)} not applicable")

    def __str__(self) -> str:
        return self.line()


@dataclass
class FilterReport:
    """The steps of a filter chain and the ids it kept; ``str(report)`` prints one line per
    filter."""

    steps: list[FilterStep] = field(default_factory=list)
    kept: list = field(default_factory=list)

    @property
    def rejected(self) -> dict:
        """``{id: (filter name, reason)}`` over all steps."""
        return {i: (s.name, r) for s in self.steps for i, r in s.rejected.items()}

    def lines(self) -> list[str]:
        return [s.line() for s in self.steps]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def entry_ids(entries: Sequence[Record]) -> list:
    """The id of each entry (its ``id`` key, else its position); repeated ids are an error."""
    ids, seen, repeated = [], set(), []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            kind = type(entry).__name__
            raise InputError(f"entry {position}", f"is a {kind}, not a record (dict)")
        i = entry.get("id", position)
        if i in seen:
            repeated.append(i)
        seen.add(i)
        ids.append(i)
    if repeated:
        raise InputError("entries", f"ids repeated: {repeated[:10]}")
    return ids


def _value(entry: Record, key: str):
    return entry.get(key)


def unstable(entries: Sequence[Record], threshold_meV: float = DEFAULT_UNSTABLE_THRESHOLD_MEV
             ) -> tuple[list, FilterStep]:
    """Reject dynamically unstable entries: an imaginary mode with ``|frequency| > threshold_meV``,
    i.e. ``min_phonon_freq_meV < -threshold_meV``.

    The paper rejects "imaginary phonon modes at a frequency of more than 1 meV/atom"; a frequency
    has no per-atom normalisation, so we read it as the magnitude of the most imaginary phonon
    frequency, in meV, against a 1 meV threshold. Small imaginary frequencies (acoustic modes near
    Gamma, interpolation noise) are kept. A NaN minimum frequency is rejected (stability unknown).
    """
    if not threshold_meV >= 0:
        raise ValueError(f"threshold_meV must be >= 0, got {threshold_meV}")
    ids = entry_ids(entries)
    step = FilterStep("unstable", len(ids), [],
                      settings=f"imaginary modes beyond {threshold_meV:g} meV")
    for i, entry in zip(ids, entries):
        w_min = _value(entry, "min_phonon_freq_meV")
        if w_min is None:
            step.not_applicable.append(i)
            step.kept.append(i)
            continue
        w_min = float(w_min)
        if np.isnan(w_min):
            step.rejected[i] = "minimum phonon frequency is NaN"
        elif w_min < -threshold_meV:
            step.rejected[i] = (f"imaginary mode at {-w_min:.3g}i meV "
                                f"(threshold {threshold_meV:g} meV)")
        else:
            step.kept.append(i)
    return step.kept, step


def negative_a2f(entries: Sequence[Record], tol: float = DEFAULT_NEGATIVE_A2F_TOL
                 ) -> tuple[list, FilterStep]:
    """Reject entries whose a2F goes below ``-tol * max|a2F|`` (unphysical: a2F(w) >= 0).

    Non-finite values are ignored here (see :func:`nan_spectra`); an a2F with no finite value is
    not applicable, and an all-zero a2F has nothing negative.
    """
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    ids = entry_ids(entries)
    step = FilterStep("negative_a2f", len(ids), [], settings=f"tol {tol:g} of max|a2F|")
    for i, entry in zip(ids, entries):
        a2f = _value(entry, "a2f")
        values = None if a2f is None else np.asarray(a2f, dtype=float).ravel()
        values = None if values is None else values[np.isfinite(values)]
        if values is None or values.size == 0:
            step.not_applicable.append(i)
            step.kept.append(i)
            continue
        scale = float(np.max(np.abs(values)))
        lowest = float(values.min())
        if lowest < -tol * scale:
            step.rejected[i] = (f"a2F down to {lowest:.3g} = {lowest / scale:.3g} x max|a2F| "
                                f"(tolerance {tol:g})")
        else:
            step.kept.append(i)
    return step.kept, step


def nan_spectra(entries: Sequence[Record], keys: Sequence[str] = ("a2f",)
                ) -> tuple[list, FilterStep]:
    """Reject entries with a NaN or infinite value in any of the spectra ``keys`` (default:
    ``a2f``); an entry with none of the keys is not applicable."""
    ids = entry_ids(entries)
    step = FilterStep("nan_spectra", len(ids), [], settings=", ".join(keys))
    for i, entry in zip(ids, entries):
        present = [(k, _value(entry, k)) for k in keys if _value(entry, k) is not None]
        if not present:
            step.not_applicable.append(i)
            step.kept.append(i)
            continue
        bad = []
        for key, spectrum in present:
            try:
                values = np.asarray(spectrum, dtype=float)
            except (TypeError, ValueError):
                bad.append(f"{key} is not numeric")
                continue
            n_bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            if n_bad:
                bad.append(f"{key} has {n_bad} non-finite of {values.size} values")
        if bad:
            step.rejected[i] = "; ".join(bad)
        else:
            step.kept.append(i)
    return step.kept, step


def duplicates(entries: Sequence[Record], matcher=None) -> tuple[list, FilterStep]:
    """Reject an entry when an earlier kept entry has the same reduced formula and the two
    structures match under pymatgen's ``StructureMatcher`` (default settings: primitive cells,
    so supercells match; any orientation and origin; volumes scaled). The first one is kept.
    """
    if matcher is None:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        matcher = StructureMatcher()
    ids = entry_ids(entries)
    step = FilterStep("duplicates", len(ids), [],
                      settings="same reduced formula and StructureMatcher")
    by_formula: dict[str, list[tuple[Hashable, object]]] = {}
    for i, entry in zip(ids, entries):
        structure = _value(entry, "structure")
        if structure is None:
            step.not_applicable.append(i)
            step.kept.append(i)
            continue
        try:
            formula = structure.composition.reduced_formula
        except AttributeError:
            raise InputError(f"entry {i}", "'structure' is not a pymatgen Structure") from None
        group = by_formula.setdefault(formula, [])
        original = next((j for j, s in group if matcher.fit(s, structure)), None)
        if original is None:
            group.append((i, structure))
            step.kept.append(i)
        else:
            step.rejected[i] = f"duplicate of {original} ({formula})"
    return step.kept, step


FILTERS = ("nan_spectra", "unstable", "negative_a2f", "duplicates")


def apply_filters(
    entries: Sequence[Record],
    filters: Sequence[str] = FILTERS,
    threshold_meV: float = DEFAULT_UNSTABLE_THRESHOLD_MEV,
    tol: float = DEFAULT_NEGATIVE_A2F_TOL,
    spectrum_keys: Sequence[str] = ("a2f",),
    matcher=None,
) -> tuple[list[Record], FilterReport]:
    """Run ``filters`` in order, each on what the previous kept; return the kept entries (the
    original records, in their order) and the :class:`FilterReport`. Duplicates go last by
    default so that the first *clean* copy of a structure is the one kept."""
    steps = {
        "nan_spectra": lambda es: nan_spectra(es, keys=spectrum_keys),
        "unstable": lambda es: unstable(es, threshold_meV=threshold_meV),
        "negative_a2f": lambda es: negative_a2f(es, tol=tol),
        "duplicates": lambda es: duplicates(es, matcher=matcher),
    }
    return run_filter_chain(entries, filters, steps)


def run_filter_chain(
    entries: Sequence[Record], filters: Sequence[str], steps: dict[str, Callable[[list], tuple[list, FilterStep]]]
) -> tuple[list[Record], FilterReport]:
    """Run the named ``steps`` in the order of ``filters``, each on what the previous kept; return
    the kept entries (the original records, in their order) and the :class:`FilterReport`."""
    unknown = [f for f in filters if f not in steps]
    if unknown:
        raise ValueError(f"unknown filters {unknown}; choose from {tuple(steps)}")
    ids = entry_ids(entries)
    by_id = dict(zip(ids, entries))
    current = [{**e, "id": i} for i, e in zip(ids, entries)]
    report = FilterReport()
    for name in filters:
        kept, step = steps[name](current)
        report.steps.append(step)
        keep = set(kept)
        current = [e for e in current if e["id"] in keep]
    report.kept = [e["id"] for e in current]
    return [by_id[e["id"]] for e in current], report
