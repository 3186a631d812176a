"""A check set of published electron-phonon λ of elemental metals (``elemental_lambda.csv``: value, method,
source, and the experimental lattice of each element): read it, build each element's primitive cell, predict
every cell with an ensemble and score its λ against the table (MAE, RMSE, Spearman, and whether the weakly
coupled Cu, Ag, Au, Na, K stay below λ = 0.3); ``betenet check-elements --ensemble jarvis-tc`` runs it.
:func:`with_elemental_labels` adds the table to a dataset as λ labels (mixed supervision).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["ElementalLambda", "ID_PREFIX", "WEAK", "WEAK_LIMIT", "build_structure", "check_ensemble", "markdown",
           "read_table", "with_elemental_labels"]

#: The package-data file of the table.
TABLE = "elemental_lambda.csv"
#: Weakly coupled metals whose predicted λ should stay below :data:`WEAK_LIMIT`.
WEAK = ("Cu", "Ag", "Au", "Na", "K")
WEAK_LIMIT = 0.3
#: Cubic structures: space group and the one site of the conventional cell.
_CUBIC = {"bcc": "Im-3m", "fcc": "Fm-3m"}


@dataclass(frozen=True)
class ElementalLambda:
    """One row of the table: the element, its structure (bcc | fcc | hcp) and experimental lattice constants
    (Å; ``c_A`` None for cubic), the published λ, how it was obtained and where it was published."""
    element: str
    structure: str
    a_A: float
    c_A: float | None
    lambda_: float
    method: str
    source: str


def read_table() -> list[ElementalLambda]:
    """The rows of ``elemental_lambda.csv`` (package data of :mod:`betenet.evaluation`), in file order."""
    text = resources.files("betenet.evaluation").joinpath(TABLE).read_text(encoding="utf-8")
    rows = []
    for rec in csv.DictReader(text.splitlines()):
        c = (rec.get("c_A") or "").strip()
        rows.append(ElementalLambda(element=rec["element"].strip(), structure=rec["structure"].strip().lower(),
                                    a_A=float(rec["a_A"]), c_A=float(c) if c else None,
                                    lambda_=float(rec["lambda"]), method=rec["method"].strip(),
                                    source=rec["source"].strip()))
    return rows


def build_structure(row: ElementalLambda):
    """The primitive cell of ``row`` as a pymatgen ``Structure``: bcc/fcc one atom (built from the conventional
    cubic cell), hcp two atoms at (1/3, 2/3, 1/4) and (2/3, 1/3, 3/4)."""
    from pymatgen.core import Lattice, Structure

    if row.structure in _CUBIC:
        conventional = Structure.from_spacegroup(_CUBIC[row.structure], Lattice.cubic(row.a_A), [row.element],
                                                 [[0.0, 0.0, 0.0]])
        return conventional.get_primitive_structure()
    if row.structure == "hcp":
        if row.c_A is None:
            raise ValueError(f"{row.element}: hcp needs c_A")
        return Structure(Lattice.hexagonal(row.a_A, row.c_A), [row.element, row.element],
                         [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])
    raise ValueError(f"{row.element}: structure {row.structure!r} is not bcc, fcc or hcp")


#: Id prefix of the elemental rows a dataset gets from :func:`with_elemental_labels`.
ID_PREFIX = "elemental-"


def with_elemental_labels(data_root, out_root, rows: list[ElementalLambda] | None = None) -> list[str]:
    """A directory-format dataset at ``out_root``: every structure and label row of the dataset at ``data_root``
    (structures linked, not copied) plus one entry per elemental row, its primitive cell with the published λ as
    its only label (mixed supervision: the loss's λ term trains on it, the Tc term on the others). Returns the
    elemental ids (``elemental-<El>``), which no split of the source names: list them in the training split."""
    data_root, out_root = Path(data_root).resolve(), Path(out_root)
    rows = read_table() if rows is None else list(rows)
    structures = out_root / "structures"
    structures.mkdir(parents=True, exist_ok=True)
    for src in sorted((data_root / "structures").iterdir()):
        link = structures / src.name
        if not link.exists():
            link.symlink_to(src)
    with open(data_root / "labels.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        columns, base = list(reader.fieldnames or []), list(reader)
    if "lambda" not in columns:
        columns.append("lambda")
    ids = []
    for r in rows:
        ident = f"{ID_PREFIX}{r.element}"
        build_structure(r).to(filename=str(structures / f"{ident}.vasp"), fmt="poscar")
        base.append({"id": ident, "lambda": repr(r.lambda_)})
        ids.append(ident)
    with open(out_root / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(base)
    return ids


def _number(value) -> float | None:
    """A finite float, or None (NaN, None, or not a number)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def check_ensemble(ensemble, rows: list[ElementalLambda] | None = None, mu_star: float | None = None) -> dict:
    """Predict every row's primitive cell with ``ensemble`` (``predict_structures``, ids = the elements) and
    score λ against the table. Rows whose status is not ``ok`` (or without a finite λ) are listed but left out
    of the scores (``n_excluded``). Returns ``n`` (rows scored), ``n_total``, ``n_excluded``, ``lambda_mae``,
    ``lambda_rmse``, ``spearman`` (None where undefined), ``weak`` (element → predicted λ, for the rows of
    :data:`WEAK`), ``weak_all_below_0.3`` (every such row predicted, and below 0.3) and ``rows`` (per element:
    element, structure, lambda_ref, lambda_pred, lambda_std, status, warnings, method, source)."""
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    rows = read_table() if rows is None else list(rows)
    if not rows:
        raise ValueError("no rows to check")
    ids = [r.element for r in rows]
    table = ensemble.predict_structures([build_structure(r) for r in rows], ids=ids, mu_star=mu_star,
                                        progress=False)
    if "id" in table.columns:
        records = {str(rec["id"]): rec for rec in table.to_dict("records")}
    else:
        records = dict(zip(ids, table.to_dict("records")))
    out_rows, ref, pred = [], [], []
    for r in rows:
        rec = records.get(r.element, {})
        status = str(rec.get("status", "missing from the prediction table"))
        warnings = rec.get("warnings", "")
        warnings = "" if warnings is None or (isinstance(warnings, float) and math.isnan(warnings)) else str(warnings)
        lam, std = _number(rec.get("lambda")), _number(rec.get("lambda_std"))
        out_rows.append({"element": r.element, "structure": r.structure, "lambda_ref": r.lambda_,
                         "lambda_pred": lam, "lambda_std": std, "status": status, "warnings": warnings,
                         "method": r.method, "source": r.source})
        if status == "ok" and lam is not None:
            ref.append(r.lambda_)
            pred.append(lam)
    n = len(ref)
    mae = float(mean_absolute_error(ref, pred)) if n else None
    rmse = float(math.sqrt(mean_squared_error(ref, pred))) if n else None
    rho = None
    if n >= 2:
        value = float(spearmanr(ref, pred).statistic)
        rho = value if math.isfinite(value) else None
    by_element = {d["element"]: d for d in out_rows}
    weak = {el: by_element[el]["lambda_pred"] for el in WEAK if el in by_element}
    weak_ok = bool(weak) and all(by_element[el]["status"] == "ok" and v is not None and v < WEAK_LIMIT
                                 for el, v in weak.items())
    return {"n": n, "n_total": len(rows), "n_excluded": len(rows) - n, "lambda_mae": mae, "lambda_rmse": rmse,
            "spearman": rho, "weak": weak, "weak_all_below_0.3": weak_ok, "rows": out_rows}


def _fmt(x, spec: str = ".2f") -> str:
    return "—" if x is None else format(x, spec)


def markdown(result: dict) -> str:
    """``result`` of :func:`check_ensemble` as Markdown: one table row per element and a summary line."""
    lines = ["| element | structure | λ ref | λ pred ± std | status | method | source |",
             "| --- | --- | ---: | ---: | --- | --- | --- |"]
    for d in result["rows"]:
        pred = _fmt(d["lambda_pred"])
        if d["lambda_pred"] is not None and d["lambda_std"] is not None:
            pred = f"{pred} ± {_fmt(d['lambda_std'])}"
        status = d["status"] + (f" ({d['warnings']})" if d.get("warnings") else "")
        cells = [d["element"], d.get("structure", ""), _fmt(d["lambda_ref"], ".3g"), pred, status,
                 d.get("method", ""), d.get("source", "")]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    weak = ", ".join(f"{el} {_fmt(v)}" for el, v in result["weak"].items()) or "none in the table"
    lines += ["", f"λ MAE {_fmt(result['lambda_mae'], '.3f')}, RMSE {_fmt(result['lambda_rmse'], '.3f')}, "
                  f"Spearman {_fmt(result['spearman'], '.3f')} over {result['n']} of {result['n_total']} elements "
                  f"({result['n_excluded']} left out: not predicted). Weak metals (goal λ < {WEAK_LIMIT}): {weak}; "
                  f"all below: {'yes' if result['weak_all_below_0.3'] else 'no'}."]
    return "\n".join(lines) + "\n"
