"""a2F file readers: the QE Al reference files (lambda as printed by QE), layouts, bad input."""

import re

import numpy as np
import pytest

from betenet.errors import InputError
from betenet.physics.a2f_files import A2FSpectrum, read_a2f, read_columns_a2f, read_qe_a2f
from betenet.physics.properties import properties
from betenet.physics.units import RY_TO_MEV

QE_FILES = [f"a2F.dos{i}" for i in range(1, 11)]


def _printed_lambda_and_delta(path):
    """The 'lambda = ... Delta = ...' line QE writes last, parsed independently of the reader."""
    last = [line for line in path.read_text().splitlines() if line.strip()][-1]
    m = re.match(r"\s*lambda\s*=\s*(\S+)\s+Delta\s*=\s*(\S+)", last)
    assert m, last
    return float(m.group(1)), float(m.group(2))


def _lambda_table(path):
    """Rows 'Broadening <sigma> lambda <lambda> dos(Ef) <N>' of QE's lambda summary, in file order."""
    rows = re.findall(r"Broadening\s+(\S+)\s+lambda\s+(\S+)\s+dos\(Ef\)\s+(\S+)", path.read_text())
    return [(float(s), float(lam)) for s, lam, _ in rows]


# ------------------------------------------------------------------------------------------
# QE Al reference
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", QE_FILES)
def test_qe_lambda_matches_value_printed_by_qe(qe_al_dir, name):
    path = qe_al_dir / name
    spec = read_qe_a2f(path)
    printed_lambda, printed_delta = _printed_lambda_and_delta(path)
    assert spec.lambda_reported == printed_lambda
    lam = properties(spec.omega_meV, spec.a2f)["lambda"]
    assert lam == pytest.approx(printed_lambda, rel=5e-3)
    # the integration rule is QE's own rectangle rule on the restored uniform grid: agreement is
    # limited only by the 6 decimals QE prints for a2F (~3e-5 relative for these files)
    assert lam == pytest.approx(printed_lambda, rel=1e-4)
    # grid: uniform with QE's spacing Delta (Ry -> meV), first point as printed (6 decimals)
    data = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
    first_omega_ry = float(data[0].split()[0])
    assert spec.omega_meV[0] == pytest.approx(first_omega_ry * RY_TO_MEV, abs=0.5e-6 * RY_TO_MEV)
    np.testing.assert_allclose(np.diff(spec.omega_meV), printed_delta * RY_TO_MEV, rtol=1e-9)


@pytest.mark.parametrize("index", range(1, 11))
def test_qe_lambda_matches_lambda_table(qe_al_dir, index):
    # 'lambda' lists one row per broadening; row i belongs to a2F.dos<i> (broadening 0.005*i Ry)
    table = _lambda_table(qe_al_dir / "lambda")
    assert len(table) == 10
    sigma, table_lambda = table[index - 1]
    assert sigma == pytest.approx(0.005 * index)
    spec = read_qe_a2f(qe_al_dir / f"a2F.dos{index}")
    assert properties(spec.omega_meV, spec.a2f)["lambda"] == pytest.approx(table_lambda, rel=5e-3)


def test_qe_reader_structure(qe_al_dir):
    path = qe_al_dir / "a2F.dos3"
    spec = read_a2f(path)  # auto-detected as QE
    assert isinstance(spec, A2FSpectrum) and spec.path == str(path)
    assert spec.omega_meV.shape == spec.a2f.shape == (50,)
    assert spec.per_mode.shape == (50, 3)  # fcc Al: nat = 1, 3 modes
    # total = sum over modes, up to the 6 decimals QE prints for the total
    np.testing.assert_allclose(spec.per_mode.sum(axis=1), spec.a2f, atol=5.01e-7)
    # the unit conversion leaves lambda unchanged: integrate the same data on the Ry axis
    lam_ry = properties(spec.omega_meV / RY_TO_MEV, spec.a2f)["lambda"]
    assert lam_ry == pytest.approx(properties(spec.omega_meV, spec.a2f)["lambda"], rel=1e-12)
    # the last frequency printed in the file, converted to meV
    last_omega_ry = float(path.read_text().strip().split("\n")[-3].split()[0])
    assert spec.omega_meV[-1] == pytest.approx(last_omega_ry * RY_TO_MEV, abs=0.5e-6 * RY_TO_MEV)


# ------------------------------------------------------------------------------------------
# synthetic QE layouts
# ------------------------------------------------------------------------------------------
HEADER = " # Eliashberg function a2F (per both spin)\n #  frequencies in Rydberg\n # DOS normalized\n\n"


def _qe_text(omega_ry, modes, per_line, decimals=6, tail=True):
    """A matdyn-like file: 'omega total' then the mode values wrapped ``per_line`` to a line."""
    out = [HEADER]
    for w, row in zip(omega_ry, modes):
        out.append(f"   {w:12.{decimals}f} {sum(row):12.6f}\n")
        for i in range(0, len(row), per_line):
            out.append("  " + "  ".join(f"{v:14.8f}" for v in row[i : i + per_line]) + "\n")
    if tail:
        out.append("  lambda =  0.5         Delta =    1.0E-003\n")
    return "".join(out)


@pytest.mark.parametrize("n_modes,per_line", [(6, 6), (6, 3), (6, 4), (9, 4), (3, 1), (6, 2)])
def test_qe_wrapped_mode_lines(tmp_path, n_modes, per_line):
    rng = np.random.default_rng(n_modes * 10 + per_line)
    omega = 0.0005 + 0.001 * np.arange(7)
    modes = np.round(rng.uniform(-0.01, 0.3, size=(7, n_modes)), 8)
    path = tmp_path / "a2F.dos1"
    path.write_text(_qe_text(omega, modes, per_line))
    spec = read_qe_a2f(path)
    assert spec.per_mode.shape == (7, n_modes)
    np.testing.assert_allclose(spec.per_mode, modes, atol=1e-12)
    np.testing.assert_allclose(spec.a2f, np.round(modes.sum(axis=1), 6), atol=1e-12)
    np.testing.assert_allclose(spec.omega_meV, omega * RY_TO_MEV, rtol=1e-12)
    assert spec.lambda_reported == 0.5


def test_qe_without_mode_lines_or_lambda_line(tmp_path):
    path = tmp_path / "totals.dat"
    rows = [(0.001, 0.1), (0.002, 0.3), (0.003, 0.2)]
    path.write_text(HEADER + "".join(f"  {w:.6f}  {a:.6f}\n" for w, a in rows))
    spec = read_qe_a2f(path)
    assert spec.per_mode is None and spec.lambda_reported is None
    np.testing.assert_allclose(spec.a2f, [0.1, 0.3, 0.2])


def test_qe_fortran_d_exponent(tmp_path):
    path = tmp_path / "a2F.dos2"
    records = "  1.0D-03  2.0D-02\n  1.0D-02 1.0D-02\n  2.0D-03  4.0D-02\n 2.0D-02 2.0D-02\n"
    path.write_text(HEADER + records)
    spec = read_qe_a2f(path)
    np.testing.assert_allclose(spec.a2f, [0.02, 0.04])
    np.testing.assert_allclose(spec.omega_meV, np.array([1e-3, 2e-3]) * RY_TO_MEV)


# ------------------------------------------------------------------------------------------
# plain columns
# ------------------------------------------------------------------------------------------
def test_columns_roundtrip(tmp_path):
    omega = np.linspace(0.25, 100.25, 51)
    a2f = np.exp(-((omega - 30.0) / 8.0) ** 2) * 0.7
    path = tmp_path / "a2f.txt"
    np.savetxt(path, np.column_stack([omega, a2f]), header="omega_meV a2F", fmt="%.17g")
    spec = read_columns_a2f(path)
    assert spec.per_mode is None and spec.lambda_reported is None and spec.path == str(path)
    np.testing.assert_array_equal(spec.omega_meV, omega)
    np.testing.assert_array_equal(spec.a2f, a2f)
    assert read_a2f(path).omega_meV.tolist() == omega.tolist()  # auto -> columns
    csv = tmp_path / "a2f.csv"
    csv.write_text("# meV, a2F\n" + "".join(f"{float(w)!r},{float(a)!r}\n" for w, a in zip(omega, a2f)))
    np.testing.assert_array_equal(read_a2f(csv, format="columns").a2f, a2f)


def test_auto_format_detects_qe(qe_al_dir, tmp_path):
    renamed = tmp_path / "al_spectrum.txt"  # no a2F.dos name: detected from the header
    renamed.write_text((qe_al_dir / "a2F.dos4").read_text())
    spec = read_a2f(renamed)
    assert spec.per_mode is not None and spec.lambda_reported is not None


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
def _raises(reader, path, fragment):
    with pytest.raises(InputError) as err:
        reader(path)
    assert err.value.subject == str(path)
    assert fragment in err.value.reason, err.value.reason
    assert str(err.value).startswith(str(path))


@pytest.mark.parametrize("reader", [read_qe_a2f, read_columns_a2f, read_a2f])
def test_missing_and_empty_files(tmp_path, reader):
    _raises(reader, tmp_path / "nope.dat", "not found")
    empty = tmp_path / "empty.dat"
    empty.write_text("")
    _raises(reader, empty, "no data lines")
    comments = tmp_path / "comments.dat"
    comments.write_text("# only\n   # comments\n\n")
    _raises(reader, comments, "no data lines")
    _raises(reader, tmp_path, "not a regular file")


def test_columns_bad_input(tmp_path):
    cases = {
        "junk.dat": ("1.0 0.1\n2.0 abc\n", "line 2: cannot parse number 'abc'"),
        "nan.dat": ("1.0 0.1\n2.0 nan\n", "line 2: non-finite value 'nan'"),
        "three.dat": ("1.0 0.1\n2.0 0.2 0.3\n", "line 2: expected 2 columns"),
        "one.dat": ("# x\n1.0\n", "line 2: expected 2 columns"),
        "order.dat": ("1.0 0.1\n3.0 0.2\n2.0 0.3\n", "not strictly increasing"),
    }
    for name, (text, fragment) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        _raises(read_columns_a2f, path, fragment)


def test_qe_bad_input(tmp_path):
    good = _qe_text(0.0005 + 0.001 * np.arange(4), np.full((4, 3), 0.1), 3)
    lines = good.splitlines(keepends=True)
    data_start = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.strip().startswith("#"))
    cases = {
        # a per-mode value missing in the third record
        "short": ("".join(lines[: data_start + 5]) + lines[data_start + 5].rsplit(" ", 1)[0] + "\n"
                  + "".join(lines[data_start + 6:]), "do not share one layout"),
        "junk": (good.replace("0.10000000", "0.1OOOOOOO", 1), "cannot parse number '0.1OOOOOOO'"),
        "nan": (good.replace("0.10000000", "NaN", 1), "non-finite value 'NaN'"),
        "after": (good + "  0.0100  0.2\n", "data after the 'lambda =' line"),
        "lambda": (good.replace("lambda =  0.5", "lambda =  ****"), "cannot parse number '****'"),
        "first": (HEADER + "  0.001 0.1 0.2\n", "at least two records"),  # one one-line record
        "lone": (HEADER + "  0.001\n  0.002\n", "got 1 value(s)"),
        "single": (HEADER + "  0.001 0.1\n  0.05 0.03 0.02\n", "do not share one layout"),
        "order": (good.replace("0.002500", "0.000100"), "do not share one layout"),
    }
    for name, (text, fragment) in cases.items():
        path = tmp_path / f"{name}.dos"
        path.write_text(text)
        _raises(read_qe_a2f, path, fragment)


def test_unknown_format_name(tmp_path):
    path = tmp_path / "x.dat"
    path.write_text("1 2\n")
    with pytest.raises(ValueError, match="unknown a2F file format"):
        read_a2f(path, format="yaml")


def test_qe67_one_record_per_line_layout(tmp_path, qe_al_dir):
    """QE 6.7 (Debian) writes each record on one line: 'omega total mode1 .. modeN'."""
    ref = read_qe_a2f(qe_al_dir / "a2F.dos3")
    path = tmp_path / "a2F.dos3"
    lines = ["# Eliashberg function a2F (per both spin)", "#  frequencies in Rydberg"]
    for w, total, modes in zip(ref.omega_meV / RY_TO_MEV, ref.a2f, ref.per_mode):
        lines.append(" ".join(f"{v:.8f}" for v in (w, total, *modes)))
    lines.append(f"  lambda = {ref.lambda_reported}   Delta = 0.1")
    path.write_text("\n".join(lines) + "\n")
    one = read_qe_a2f(path)
    assert one.per_mode.shape == ref.per_mode.shape
    np.testing.assert_allclose(one.a2f, ref.a2f, atol=1e-8)
    assert properties(one.omega_meV, one.a2f)["lambda"] == pytest.approx(ref.lambda_reported, rel=5e-3)
    bad = tmp_path / "a2F.dos4"
    bad.write_text("\n".join(lines[:5] + [lines[5] + " 0.1"] + lines[6:]) + "\n")
    with pytest.raises(InputError, match="a2F.dos4"):
        read_qe_a2f(bad)
