"""The gradient-boosting baseline for Tc-only data: features of structures and phonon DOS, the lambda
target implied by Tc through Allen-Dynes at the phonon moments, and Tc back through Allen-Dynes."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from betenet.models.gbm_baseline import FEATURE_NAMES, GBMBaseline, composition_features, features, phonon_features
from betenet.physics.properties import allen_dynes_tc, properties

pytest.importorskip("sklearn")


def gaussian_dos(f, centre, width):
    return np.exp(-(((f - centre) / width) ** 2))


def test_phonon_features_by_hand():
    f = np.arange(0.05, 60.0, 0.1)
    g = gaussian_dos(f, 20.0, 3.0)
    ph = dict(zip(FEATURE_NAMES[-7:], phonon_features(f, g, min_freq_meV=-0.5)))
    m = properties(f, g)
    assert ph["ph_omega_log_K"] == pytest.approx(m["omega_log_K"])
    assert ph["ph_omega_2_K"] == pytest.approx(m["omega_2_K"])
    assert ph["ph_mean_meV"] == pytest.approx(20.0, rel=1e-3)
    assert ph["ph_soft_share"] < 1e-3 and ph["ph_min_freq_meV"] == -0.5
    # 99 % of a Gaussian lies below mean + 2.326 sigma (sigma = width / sqrt 2)
    assert ph["ph_max_meV"] == pytest.approx(20.0 + 2.326 * 3.0 / np.sqrt(2), rel=1e-2)


def test_composition_features():
    s = Structure(Lattice.cubic(3.0), ["Nb", "Nb", "Sn"], [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5]])
    row = dict(zip(FEATURE_NAMES, composition_features(s)))
    assert row["Z_mean"] == pytest.approx((2 * 41 + 50) / 3) and row["Z_min"] == 41 and row["Z_max"] == 50
    assert row["n_elements"] == 2 and row["atoms_per_cell"] == 3 and row["volume_per_atom"] == pytest.approx(9.0)


def test_lambda_target_recovers_allen_dynes_materials():
    """Synthetic materials whose Tc is Allen-Dynes of a lambda set by one composition feature, at
    their phonon moments: the lambda model learns it, and its Tc follows through Allen-Dynes."""
    rng = np.random.default_rng(0)
    f = np.arange(0.05, 80.0, 0.2)
    rows, tc, lam_true = [], [], []
    elements = ["Al", "Nb", "V", "Mo", "Pb", "Sn", "Ti", "Zr"]
    for k in range(240):
        el = elements[k % len(elements)]
        s = Structure(Lattice.cubic(rng.uniform(2.8, 4.2)), [el], [[0, 0, 0]])
        g = gaussian_dos(f, rng.uniform(8, 40), rng.uniform(2, 6))
        x = features(s, f, g)
        lam = 0.2 + 0.04 * (x[FEATURE_NAMES.index("Z_mean")] % 25)  # lambda from the composition
        m = properties(f, g)
        rows.append(x)
        lam_true.append(lam)
        tc.append(float(allen_dynes_tc(lam, m["omega_log_K"], m["omega_2_K"], 0.10)))
    x, tc, lam_true = np.array(rows), np.array(tc), np.array(lam_true)
    model = GBMBaseline(target="lambda").fit(x[:200], tc[:200])
    pred = model.predict(x[200:])
    assert np.abs(pred["lambda"] - lam_true[200:]).max() < 0.02
    wlog, w2 = x[200:, FEATURE_NAMES.index("ph_omega_log_K")], x[200:, FEATURE_NAMES.index("ph_omega_2_K")]
    np.testing.assert_allclose(pred["tc_K"], allen_dynes_tc(pred["lambda"], wlog, w2, 0.10))
    assert np.mean(np.abs(pred["tc_K"] - tc[200:])) < 0.1 * np.mean(tc[200:])
    direct = GBMBaseline(target="tc").fit(x[:200], tc[:200]).predict(x[200:])
    assert np.isnan(direct["lambda"]).all() and (direct["tc_K"] >= 0).all()
