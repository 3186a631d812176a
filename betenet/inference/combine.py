"""How the members' spectra become one prediction, as the paper combines them: the ensemble's a2F is the mean
of the members' a2F, and λ, ω_log, ω_2 and T_c are computed from that mean spectrum. The uncertainty of a property
is the spread of the members' own values of it (each member's property from its own a2F): the standard deviation
over members with ddof = 0; the a2F band is the per-bin standard deviation, also ddof = 0. A single member has no
spread: every std is NaN, with one warning. Also the one rule for when a prediction shows progress bars.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from betenet.physics.properties import PROPERTIES, properties
from betenet.physics.units import BIN_CENTRES_MEV, MU_STAR_DEFAULT

log = logging.getLogger(__name__)

__all__ = ["ELIASHBERG_KEY", "EnsemblePrediction", "NO_SPREAD", "PROGRESS_MIN_STRUCTURES", "combine_members",
           "show_progress"]

#: The extra property computed with ``eliashberg=True``.
ELIASHBERG_KEY = "tc_eliashberg_K"

#: ``progress="auto"`` shows progress bars from this many structures on.
PROGRESS_MIN_STRUCTURES = 200
#: Logged once per prediction by a one-member ensemble, whose stds are NaN.
NO_SPREAD = "a single member has no spread: every _std is NaN (use 2 or more members for an uncertainty)"


def show_progress(progress, n: int) -> bool:
    """``progress`` True/False as given; ``"auto"`` (or None): only for ``n`` ≥ :data:`PROGRESS_MIN_STRUCTURES`."""
    if progress is None or progress == "auto":
        return n >= PROGRESS_MIN_STRUCTURES
    return bool(progress)


@dataclass
class EnsemblePrediction:
    """An ensemble's prediction for N materials (see :func:`combine_members`)."""

    ids: list[str]
    formulas: list[str]
    member_a2f: np.ndarray  # [M, N, B]
    a2f_mean: np.ndarray  # [N, B]
    a2f_std: np.ndarray  # [N, B]
    properties: dict[str, np.ndarray]  # of the mean a2F, [N] each
    properties_std: dict[str, np.ndarray]  # spread of the members' own values, [N] each
    mu_star: float
    omega_meV: np.ndarray = field(default_factory=lambda: np.asarray(BIN_CENTRES_MEV, dtype=float))
    calibration: dict | None = None  # the scales applied to the stds (Calibration.apply), None: the members' own


def combine_members(member_a2f, mu_star: float = MU_STAR_DEFAULT, omega_meV=BIN_CENTRES_MEV,
                    eliashberg: bool = False, progress: bool = False) -> dict:
    """Ensemble statistics of member spectra ``member_a2f`` [M, N, B] on ``omega_meV`` [B].

    Returns ``dict(a2f_mean [N, B], a2f_std [N, B], properties, properties_std)``; ``properties``
    maps :data:`~betenet.physics.properties.PROPERTIES` (λ, ω_log [K], ω_2 [K], Allen–Dynes T_c
    [K] with ``mu_star``) to [N] arrays computed from the mean a2F; ``properties_std`` the standard
    deviation (ddof = 0) over members of each member's own value; with one member every std is NaN
    and a warning is logged (:data:`NO_SPREAD`). ``eliashberg=True`` adds ``tc_eliashberg_K``
    (isotropic Eliashberg T_c, one solve per member and material: slow).
    """
    preds = np.asarray(member_a2f, dtype=np.float64)
    omega = np.asarray(omega_meV, dtype=np.float64)
    if preds.ndim != 3 or preds.shape[2] != omega.size or preds.shape[0] < 1:
        raise ValueError(f"member_a2f must be [M >= 1, N, {omega.size}], got shape {preds.shape}")
    mean = preds.mean(axis=0)
    std = preds.std(axis=0)
    props = {k: np.atleast_1d(v).astype(np.float64) for k, v in properties(omega, mean, mu_star).items()}
    m, n = preds.shape[:2]
    per_member = properties(omega, preds.reshape(m * n, -1), mu_star)
    spread = {k: np.asarray(per_member[k], dtype=np.float64).reshape(m, n).std(axis=0) for k in PROPERTIES}
    if eliashberg:
        from betenet.physics.eliashberg_solver import eliashberg_tc

        members_tc = np.empty((m, n))
        props[ELIASHBERG_KEY] = np.empty(n)
        for i in tqdm(range(n), desc="Eliashberg Tc", disable=not progress, leave=False):
            props[ELIASHBERG_KEY][i] = eliashberg_tc(omega, mean[i], mu_star)
            for j in range(m):
                members_tc[j, i] = eliashberg_tc(omega, preds[j, i], mu_star)
        spread[ELIASHBERG_KEY] = members_tc.std(axis=0)
    if m < 2:
        log.warning(NO_SPREAD)
        std = np.full_like(std, np.nan)
        spread = {k: np.full_like(v, np.nan) for k, v in spread.items()}
    return dict(a2f_mean=mean, a2f_std=std, properties=props, properties_std=spread)
