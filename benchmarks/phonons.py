"""Site PhDOS from ML potentials (issue 13): accuracy against Quantum ESPRESSO on fcc Al, and speed.

``al``: fcc Al at QE's lattice (celldm(1) = 7.5 bohr, the shared ``qe-al-reference``) with each
potential, coarse (2×2×2 supercell) and fine (4×4×4, QE's q-grid) force constants on a 20³ mesh,
against QE's ``phonon.dos`` (q 4³ force constants, matdyn on 10³): first moment of the total DOS
(mean frequency ∫ω g / ∫g), peak position and maximum frequency (QE: the highest point of its DOS
above zero, 50-point grid, 0.83 meV spacing; ours: the highest mode on the mesh).

``speed``: coarse PhDOS (the paper's CPD recipe) of a fixed selection of shared structures, the
first ``--limit`` ids of ``indices/idx_train_full.txt`` whose file exists and parses, one at a time
in this process with the default potential (no cache): median and spread of seconds per structure
(model loaded once, before), peak resident memory, and how many show imaginary modes beyond 1 meV.

``compare`` (issue 23): the same selection through today's one-by-one path (``speed``'s loop, each
displaced supercell its own forward pass through the ASE calculator, ``batch_edges=0``) and through
``betenet phonons``' path (:func:`betenet.phonons.batch.run_batch`: ``--jobs`` worker processes with one
torch thread each, displaced supercells batched, largest first, no cache), one after the other in one
run: seconds per structure (median; for the new path also wall time / structures, worker start and model
loads included), the ratio of the totals, and the largest difference of any site-PhDOS bin between
the two paths (the new path's values as written to labels.json, rounded to 1e-8).

    python benchmarks/phonons.py al --potentials sevenn,chgnet
    python benchmarks/phonons.py speed --data ../shared/data/betenet --limit 50
    python benchmarks/phonons.py compare --data ../shared/data/betenet --limit 50 --jobs 2

Last line: ``mean_rel_err_<potential>=...`` (al), ``median_seconds_per_structure=<float>`` (speed) or
``ratio=<float> max_abs_bin_diff=<float>`` (compare).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from common import add_runtime_args, apply_runtime_args, machine_line, memory_mb

from betenet.data.filters import DEFAULT_UNSTABLE_THRESHOLD_MEV
from betenet.data.structures import load_structure
from betenet.dft.settings import qe_example_al
from betenet.errors import InputError
from betenet.phonons import PhononSettings, make_calculator, site_phdos
from betenet.physics.units import CMM1_TO_MEV


def qe_reference(path: Path) -> dict:
    d = np.loadtxt(path)
    f, g = d[:, 0] * CMM1_TO_MEV, d[:, 1]
    return {"mean_meV": float(np.trapezoid(f * g, f) / np.trapezoid(g, f)), "peak_meV": float(f[np.argmax(g)]),
            "max_meV": float(f[np.flatnonzero(g > 0).max()])}


def figures(result) -> dict:
    f, g = result.freq_meV, result.total_dos
    return {"mean_meV": float(np.trapezoid(f * g, f) / np.trapezoid(g, f)), "peak_meV": float(f[np.argmax(g)]),
            "max_meV": result.max_freq_meV}


def cmd_al(args) -> None:
    ref = qe_reference(args.qe / "phonon.dos")
    print(f"QE (LDA, q 4^3): mean {ref['mean_meV']:.2f} meV, peak {ref['peak_meV']:.2f} meV, "
          f"max {ref['max_meV']:.2f} meV")
    last = []
    for name in args.potentials.split(","):
        settings = PhononSettings(potential=name)
        t0 = time.perf_counter()
        calc = make_calculator(name)
        load = time.perf_counter() - t0
        for kind in ("coarse", "fine"):
            result = site_phdos(qe_example_al(), kind, settings, calc, name="Al")
            fig = figures(result)
            rel = {k: (fig[k] - ref[k]) / ref[k] for k in fig}
            print(f"{name} {kind} {'x'.join(map(str, result.supercell))}: mean {fig['mean_meV']:.2f} meV "
                  f"({100 * rel['mean_meV']:+.1f} %), peak {fig['peak_meV']:.2f} meV ({100 * rel['peak_meV']:+.1f} %), "
                  f"max {fig['max_meV']:.2f} meV ({100 * rel['max_meV']:+.1f} %), "
                  f"{result.info['seconds']:.1f} s (+{load:.1f} s model load); {result.info['potential_version']}")
            if kind == "fine":
                last.append(f"mean_rel_err_{name}={abs(rel['mean_meV']):.4f}")
    print(" ".join(last))


def selection(data: Path, limit: int) -> list[Path]:
    """The first ``limit`` ids of idx_train_full.txt (file order) whose structure file exists and parses."""
    ids = [str(int(float(x))) for x in (data / "indices" / "idx_train_full.txt").read_text().split()]
    out = []
    for i in ids:
        path = data / "structures" / f"{i}.cif"
        try:
            load_structure(path)
        except InputError:
            continue
        out.append(path)
        if len(out) == limit:
            break
    return out


def cmd_speed(args) -> None:
    files = selection(args.data, args.limit)
    settings = PhononSettings(potential=args.potential)
    t0 = time.perf_counter()
    calc = make_calculator(args.potential)
    print(f"model load {time.perf_counter() - t0:.1f} s ({settings.key()['potential_version']}); "
          f"structures={len(files)} ({files[0].stem} .. {files[-1].stem}) supercell={settings.supercell} "
          f"mesh={settings.mesh}")
    rows = []
    for path in files:
        s = load_structure(path)
        t = time.perf_counter()
        try:
            r = site_phdos(s, "coarse", settings, calc, name=path.stem)
            rows.append({"id": path.stem, "atoms": len(s), "seconds": time.perf_counter() - t,
                         "displacements": r.info["n_displacements"], "min_freq_meV": r.min_freq_meV})
        except InputError as err:
            rows.append({"id": path.stem, "atoms": len(s), "seconds": time.perf_counter() - t, "failed": str(err)})
    secs = [r["seconds"] for r in rows]
    ok = [r for r in rows if "failed" not in r]
    unstable = sum(r["min_freq_meV"] < -DEFAULT_UNSTABLE_THRESHOLD_MEV for r in ok)
    q = np.percentile(secs, [25, 75, 90])
    print(f"seconds per structure: median {statistics.median(secs):.2f}, quartiles {q[0]:.2f}/{q[1]:.2f}, "
          f"p90 {q[2]:.2f}, max {max(secs):.2f} (id {rows[int(np.argmax(secs))]['id']}), total {sum(secs):.1f}")
    print(f"atoms per cell: median {statistics.median(r['atoms'] for r in rows)}, max {max(r['atoms'] for r in rows)}; "
          f"displacements: median {statistics.median(r['displacements'] for r in ok) if ok else 0}")
    print(f"failed {len(rows) - len(ok)}; imaginary modes below -{DEFAULT_UNSTABLE_THRESHOLD_MEV} meV: "
          f"{unstable} of {len(ok)}")
    print(f"memory: {json.dumps({k: round(v) for k, v in memory_mb().items()})}")
    if args.rows:
        Path(args.rows).write_text(json.dumps(rows, indent=1))
    print(f"median_seconds_per_structure={statistics.median(secs):.3f}")


def cmd_compare(args) -> None:
    import dataclasses
    import os
    import tempfile

    from betenet.phonons.batch import run_batch

    files = selection(args.data, args.limit)
    settings = PhononSettings(potential=args.potential)
    structures = {p.stem: load_structure(p) for p in files}
    print(f"structures={len(files)} ({files[0].stem} .. {files[-1].stem}), atoms per cell median "
          f"{statistics.median(len(s) for s in structures.values())}, max {max(len(s) for s in structures.values())}; "
          f"supercell={settings.supercell} mesh={settings.mesh}")

    # today's path: one process, one structure after another, one forward pass per displaced supercell
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    calc = make_calculator(args.potential)
    load_s = time.perf_counter() - t0
    one_by_one = dataclasses.replace(settings, batch_edges=0)
    old, old_secs = {}, []
    t_old = time.perf_counter()
    for name, s in structures.items():
        t = time.perf_counter()
        try:
            old[name] = site_phdos(s, "coarse", one_by_one, calc, name=name).site_dos
        except InputError as err:
            print(f"  {name}: failed on today's path ({err})")
        old_secs.append(time.perf_counter() - t)
    old_total = time.perf_counter() - t_old
    del calc

    # the new path: betenet phonons with --jobs workers (batched supercells, largest first), no cache
    load1 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        summary = run_batch(files, Path(tmp) / "out", settings, cache_dir=False, jobs=args.jobs,
                            echo=lambda _: None)
        new_total = time.perf_counter() - t
        report = json.loads((Path(tmp) / "out" / "phonons_report.json").read_text())
        new = {r["id"]: np.asarray(r["phdos_coarse_site"])
               for r in json.loads((Path(tmp) / "out" / "labels.json").read_text())}
    new_secs = [r["seconds"] for r in report["rows"] if r["status"] == "computed"]
    diffs = [float(np.abs(new[k] - old[k]).max()) if new[k].shape == old[k].shape else math.inf
             for k in old if k in new]
    max_diff = max(diffs) if diffs else math.nan
    ratio = old_total / new_total
    print(f"today's path (1 process, {torch_threads()} torch threads, one forward pass per displaced supercell; "
          f"load {load0:.2f} at start): median {statistics.median(old_secs):.2f} s/structure, total {old_total:.1f} s "
          f"(+{load_s:.1f} s model load)")
    print(f"betenet phonons --jobs {args.jobs} (1 thread per worker, batched; load {load1:.2f} at start): "
          f"median {statistics.median(new_secs):.2f} s/structure within a worker, wall {new_total:.1f} s = "
          f"{new_total / len(files):.2f} s/structure (worker start and model loads included); "
          f"{summary['computed']} computed, {summary['failed']} failed")
    print(f"same structures on both paths: {len(diffs)}; max |difference| of a site-PhDOS bin: {max_diff:.3g} "
          f"states/meV (largest bin value {max(float(v.max()) for v in old.values()):.3g})")
    print(f"memory of this process: {json.dumps({k: round(v) for k, v in memory_mb().items()})}")
    print(f"ratio={ratio:.2f} max_abs_bin_diff={max_diff:.3g}")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("al", help="fcc Al against Quantum ESPRESSO")
    p.add_argument("--qe", type=Path,
                   default=Path(__file__).resolve().parents[2] / "shared" / "data" / "qe-al-reference")
    p.add_argument("--potentials", default="sevenn,chgnet")
    p.set_defaults(func=cmd_al)
    p = sub.add_parser("speed", help="seconds per structure for the coarse PhDOS")
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "betenet")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--potential", default="sevenn")
    p.add_argument("--rows", default=None, help="write the per-structure rows to this JSON file")
    p.set_defaults(func=cmd_speed)
    p = sub.add_parser("compare", help="today's one-by-one path against betenet phonons --jobs N, same structures")
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "betenet")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--potential", default="sevenn")
    p.add_argument("--jobs", type=int, default=2)
    p.set_defaults(func=cmd_compare)
    for p in sub.choices.values():
        add_runtime_args(p)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    print(machine_line(), apply_runtime_args(args))
    args.func(args)


if __name__ == "__main__":
    main()
