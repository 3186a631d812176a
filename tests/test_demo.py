"""The synthetic demo dataset: label spans, consistency of stored spectra and labels, determinism and
the on-disk cache in the generic directory format."""

import json

import numpy as np
import pytest

from betenet.data.prototypes import check_geometry
from betenet.data.sources import demo
from betenet.data.sources.demo import build_demo_dataset, dataset_key, load_demo_dataset
from betenet.data.structures import load_structure
from betenet.data.spectra import bin_spectrum
from betenet.physics.properties import PROPERTIES, a2f_properties, properties
from betenet.physics.units import BIN_CENTRES_MEV

N_SPAN = 80


@pytest.fixture(scope="module")
def entries():
    return build_demo_dataset(N_SPAN, seed=0)


def test_label_spans(entries):
    # Targets of the generator (issue): lambda about 0.1–1.5, w_log about 50–400 K.
    lam = np.array([e.labels["lambda"] for e in entries])
    wlog = np.array([e.labels["omega_log_K"] for e in entries])
    assert lam.min() < 0.2 and lam.max() > 1.2
    assert wlog.min() < 80.0 and wlog.max() > 300.0
    # and no pathological entry
    assert np.all((lam > 0.05) & (lam < 3.0))
    assert np.all((wlog > 20.0) & (wlog < 800.0))
    tc = np.array([e.labels["tc_K"] for e in entries])
    assert np.all(tc >= 0) and (tc > 5.0).any() and (tc < 1.0).any()


def test_entries_are_consistent(entries):
    seen = set()
    for e in entries:
        n = len(e.structure)
        assert n <= 12 and check_geometry(e.structure) is None
        assert (e.prototype, e.formula) not in seen
        seen.add((e.prototype, e.formula))
        grid = e.a2f_freq_meV
        np.testing.assert_allclose(np.diff(grid), demo.STORE_STEP_MEV)
        assert grid[0] == 0.0
        for dos in (e.phdos_coarse_site, e.phdos_fine_site):
            assert dos.shape == (n, grid.size) and np.all(np.isfinite(dos)) and dos.min() >= 0
            # ∫ g_s = 3 per site; on the stored 0.5 meV grid (sigma = 1 meV) to within 1 %
            np.testing.assert_allclose(np.trapezoid(dos, grid, axis=1), 3.0, rtol=1e-2)
            assert np.all(dos[:, -1] < 1e-6 * dos.max())  # the grid covers the whole spectrum
        assert e.a2f[0] == 0.0 and e.a2f.min() >= 0 and np.all(np.isfinite(e.a2f))
        assert e.min_phonon_freq_meV >= 0.0  # positive springs: no imaginary modes
        # labels are exactly the properties (Allen–Dynes Tc at mu* = 0.10) of the stored a2F
        assert e.labels == a2f_properties(grid, e.a2f, 0.10)
        entry = e.to_entry()  # passes the checks every source goes through
        assert entry.id == e.id and tuple(entry.labels) == PROPERTIES


def test_coarse_dos_is_close_to_but_not_the_fine_dos(entries):
    rel = np.array(
        [np.abs(e.phdos_coarse_site - e.phdos_fine_site).sum() / e.phdos_fine_site.sum() for e in entries]
    )
    assert np.median(rel) > 1e-3  # 2×2×2 folding loses the spring tail ...
    assert rel.max() < 0.3  # ... but keeps the spectrum's shape


def test_deterministic_and_prefix_stable():
    a = build_demo_dataset(6, seed=3)
    b = build_demo_dataset(6, seed=3)
    assert json.dumps([e.record() for e in a]) == json.dumps([e.record() for e in b])
    assert [e.structure.as_dict() for e in a] == [e.structure.as_dict() for e in b]
    prefix = build_demo_dataset(4, seed=3)
    assert json.dumps([e.record() for e in prefix]) == json.dumps([e.record() for e in a[:4]])
    other = build_demo_dataset(6, seed=4)
    assert [e.formula for e in other] != [e.formula for e in a]


def test_cache_written_in_directory_format_and_reused(tmp_path, monkeypatch):
    root = load_demo_dataset(tmp_path, n=5, seed=1)
    assert root == tmp_path / f"demo-{dataset_key(5, 1)}"
    meta = json.loads((root / "metadata.json").read_text())
    assert meta["synthetic"] is True and meta["generator"] == "betenet demo"
    assert meta["version"] == demo.GENERATOR_VERSION and meta["description"]
    records = json.loads((root / "labels.json").read_text())
    built = build_demo_dataset(5, seed=1)
    assert records == json.loads(json.dumps([e.record() for e in built]))
    for rec, e in zip(records, built):
        s = load_structure(root / "structures" / f"{rec['id']}.cif")
        assert s.composition == e.structure.composition
        np.testing.assert_allclose(s.lattice.abc, e.structure.lattice.abc, rtol=1e-6)
        assert len(rec["phdos_fine_site"]) == len(s)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("cache not reused")

    monkeypatch.setattr(demo, "build_demo_dataset", no_rebuild)
    assert load_demo_dataset(tmp_path, n=5, seed=1) == root
    monkeypatch.setenv("BETENET_CACHE", str(tmp_path))
    assert load_demo_dataset(n=5, seed=1) == root
    assert dataset_key(5, 1) != dataset_key(5, 2) != dataset_key(6, 1)


def test_acoustic_continuation_is_the_w2_law():
    w = np.arange(0.0, 20.0, 0.5)
    a = 1.0 + np.sin(w)  # anything: below w1 it is replaced
    w1 = 3.2
    out = demo.acoustic_continuation(w, a, w1)
    low = w < w1
    at_w1 = np.interp(w1, w, a)
    np.testing.assert_allclose(out[low], at_w1 * (w[low] / w1) ** 2, rtol=1e-14)
    np.testing.assert_array_equal(out[~low], a[~low])
    assert out[0] == 0.0


def test_spectra_start_from_zero(entries):
    # every stored spectrum starts at 0 and its first stored points follow the w^2 law of
    # acoustic_continuation or the mesh above it: nowhere a spurious weight at the lowest points
    for e in entries:
        assert e.a2f[0] == 0.0
        assert e.a2f[1] <= 0.25 * e.a2f[2] * (1 + 1e-5) or e.a2f[1] < 1e-6 * e.a2f.max()


def test_binned_targets_keep_lambda_and_omega_log():
    """Issue 11's measure, on the demo set used for training (300 entries, seed 0): lambda and
    omega_log of the binned target against those of the raw stored spectrum."""
    root = load_demo_dataset(n=300, seed=0)
    records = json.loads((root / "labels.json").read_text())
    raw = np.array([[r["lambda"], r["omega_log_K"]] for r in records])
    binned = np.array([[v for k, v in properties(BIN_CENTRES_MEV, bin_spectrum(r["a2f_freq_meV"], r["a2f"])).items()
                        if k in ("lambda", "omega_log_K")] for r in records])
    rel = np.abs(binned[:, 0] / raw[:, 0] - 1)
    assert np.percentile(rel, 95) <= 0.06
    assert np.abs(binned[:, 1] - raw[:, 1]).mean() <= 5.0
