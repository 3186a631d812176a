"""Units (meV, K, Ry) and the binned frequency grid of a2F targets, predictions and site PhDOS.

The network predicts a spectrum on ``n_bins`` bin centres ``start + k * step`` (meV). The paper's grid
(:data:`PAPER_GRID`: 0.25, 2.25, ..., 100.25 meV, 51 centres) is the default everywhere; a wider window
for high-frequency materials (hydrides) is a :class:`BinGrid` with other values (config
``data.spectrum``), and every consumer takes the grid from there, never from a hard-coded width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.constants import c, e, h, physical_constants

#: 1 meV expressed in kelvin (1 meV / k_B; scipy.constants, CODATA).
MEV_TO_K = physical_constants["electron volt-kelvin relationship"][0] * 1e-3
#: 1 Rydberg expressed in meV.
RY_TO_MEV = physical_constants["Rydberg constant times hc in eV"][0] * 1e3
#: 1 THz (h*nu) expressed in meV.
THZ_TO_MEV = h * 1e12 / e * 1e3
#: 1 cm^-1 (h*c*nu~) expressed in meV.
CMM1_TO_MEV = h * c * 100.0 / e * 1e3
#: 1 bohr expressed in Å.
BOHR_TO_A = physical_constants["Bohr radius"][0] * 1e10

#: No phonon lies above this (meV): the highest vibration of any material, the stretch of the H2
#: molecule, is 4161 cm^-1 ≈ 516 meV; weight above it means another frequency unit.
MAX_PHONON_MEV = 600.0
#: Below this frequency (meV) a2F vanishes as omega^2 (acoustic phonons), so a real spectrum takes a
#: negligible share of lambda from there (QE's fcc Al: none below 1 meV).
LOW_FREQUENCY_MEV = 1.0

#: Default Coulomb pseudopotential.
MU_STAR_DEFAULT = 0.10

#: Step of the fine grid that raw spectra are interpolated onto before smoothing (the 0.1 meV
#: resolution of the DFT a2F files).
FINE_STEP_MEV = 0.1
#: The fine grid ends this far above the last bin centre: the release's ``np.arange(0.25, 101.0, 0.1)``
#: for bins up to 100.25 meV (its last point, 100.95 meV, is the top of the window).
FINE_END_PAD_MEV = 0.75


@dataclass(frozen=True)
class BinGrid:
    """The binned spectrum grid: ``n_bins`` centres ``start_meV + k * step_meV`` (meV)."""

    start_meV: float = 0.25
    step_meV: float = 2.0
    n_bins: int = 51

    def __post_init__(self):
        if not (self.start_meV > 0 and self.step_meV > 0 and int(self.n_bins) >= 2):
            raise ValueError(f"bin grid needs start_meV > 0, step_meV > 0 and n_bins >= 2, got {self}")

    @property
    def centres(self) -> np.ndarray:
        """The bin centres (meV), computed as numpy's ``arange`` does (``start + k * step``)."""
        return np.arange(self.start_meV, self.start_meV + self.step_meV * (self.n_bins - 0.5), self.step_meV)

    @property
    def fine(self) -> np.ndarray:
        """The 0.1 meV grid from the first centre to ``last centre + 0.75`` meV (exclusive)."""
        return np.arange(self.start_meV, self.centres[-1] + FINE_END_PAD_MEV, FINE_STEP_MEV)

    @property
    def top_meV(self) -> float:
        """Highest frequency a binned spectrum holds information about (the fine grid's last point)."""
        return float(self.fine[-1])

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, cfg) -> BinGrid:
        """A grid from a mapping with any of ``start_meV``, ``step_meV``, ``n_bins`` (others ignored)."""
        if cfg is None:
            return cls()
        if isinstance(cfg, BinGrid):
            return cfg
        keys = ("start_meV", "step_meV", "n_bins")
        return cls(**{k: (int(cfg[k]) if k == "n_bins" else float(cfg[k])) for k in keys if k in cfg})


#: The paper's grid: 51 centres 0.25 + 2k meV, k = 0..50.
PAPER_GRID = BinGrid()
#: Number of bins of the paper's grid.
N_BINS = PAPER_GRID.n_bins
#: Bin centres of the paper's grid in meV: 0.25 + 2k, k = 0..50.
BIN_CENTRES_MEV = PAPER_GRID.centres
assert BIN_CENTRES_MEV.shape == (N_BINS,) and np.array_equal(BIN_CENTRES_MEV, np.arange(0.25, 101.0, 2.0))
assert np.array_equal(PAPER_GRID.fine, np.arange(0.25, 101.0, FINE_STEP_MEV))
