"""The paper's filters on collected DFT records, each reported: NaN spectra, imaginary modes beyond
1 meV, negative a2F (all three from :mod:`betenet.data.filters`) and "metals" with a band gap.

Records are the dataset records of :func:`betenet.dft.collect.collect_material` (keys ``id``,
``a2f``, ``phdos_*_site``, ``min_phonon_freq_meV``) plus ``band_gap_eV`` from the eDOS run.
Paper (Methods): of 1265 converged calculations, 399 had imaginary modes beyond 1 meV, 38 negative
a2F, 4 NaN values in QE's files, and 6 "metals" turned out to have a gap.
"""

from __future__ import annotations

from collections.abc import Sequence

from betenet.data.filters import (
    DEFAULT_NEGATIVE_A2F_TOL,
    DEFAULT_UNSTABLE_THRESHOLD_MEV,
    FilterReport,
    FilterStep,
    entry_ids,
    nan_spectra,
    negative_a2f,
    run_filter_chain,
    unstable,
)

#: Spectra checked for NaN / inf.
SPECTRUM_KEYS = ("a2f", "phdos_coarse_site", "phdos_fine_site")
DFT_FILTERS = ("nan_spectra", "unstable", "negative_a2f", "metals_with_gap")


def metals_with_gap(entries: Sequence[dict], threshold_eV: float = 0.0) -> tuple[list, FilterStep]:
    """Reject entries whose band gap at E_F (``band_gap_eV``) exceeds ``threshold_eV``.

    The dataset is of metals; the paper found six candidates whose eDOS showed a gap. An entry
    without ``band_gap_eV`` (no eDOS run) is kept as not applicable.
    """
    if not threshold_eV >= 0:
        raise ValueError(f"threshold_eV must be >= 0, got {threshold_eV}")
    ids = entry_ids(entries)
    step = FilterStep("metals_with_gap", len(ids), [], settings=f"gap above {threshold_eV:g} eV")
    for i, entry in zip(ids, entries):
        gap = entry.get("band_gap_eV")
        if gap is None:
            step.not_applicable.append(i)
            step.kept.append(i)
        elif float(gap) > threshold_eV:
            step.rejected[i] = f"band gap {float(gap):.3g} eV at the Fermi level (not a metal)"
        else:
            step.kept.append(i)
    return step.kept, step


def apply_dft_filters(
    entries: Sequence[dict],
    threshold_meV: float = DEFAULT_UNSTABLE_THRESHOLD_MEV,
    tol: float = DEFAULT_NEGATIVE_A2F_TOL,
    gap_threshold_eV: float = 0.0,
    filters: Sequence[str] = DFT_FILTERS,
) -> tuple[list[dict], FilterReport]:
    """Run ``filters`` in order, each on what the previous kept; return kept records and the report."""
    steps = {
        "nan_spectra": lambda es: nan_spectra(es, keys=SPECTRUM_KEYS),
        "unstable": lambda es: unstable(es, threshold_meV=threshold_meV),
        "negative_a2f": lambda es: negative_a2f(es, tol=tol),
        "metals_with_gap": lambda es: metals_with_gap(es, threshold_eV=gap_threshold_eV),
    }
    return run_filter_chain(entries, filters, {k: steps[k] for k in DFT_FILTERS})
