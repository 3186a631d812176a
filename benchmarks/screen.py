"""Stage 1 of ``betenet screen`` at scale (issue 23): rate, peak memory, and a run killed half way.

For each pool size N: a folder of N symbolic links to the shared structures under new ids (``m0000000.cif``,
...; the 806 structures over and over), then, each in a fresh process with ``--threads`` torch threads:

* ``screen``: :func:`betenet.inference.screen.screen_inputs` (stage 1 only, ``--chunk-size`` inputs per chunk,
  ``--batch-size`` graphs per forward pass) into a new ``--out``; seconds from the ensemble loaded to the files
  written, structures per second, and the process's peak resident memory (VmHWM);
* ``forward``: the network's bare forward pass on the same batches (the same chunks of the same pool, graphs
  built and batches collated before the clock; each batch's fused-path preparation made once and every
  member evaluated on it, ``torch.no_grad``, as ``Ensemble.predict_members`` does): structures per second;
* ``whole`` (with ``--whole``): the path before streaming, for comparison: every structure read and graphed,
  then the whole pool predicted at once (no files): structures per second and peak resident memory;
* ``kill`` (with ``--kill``): ``betenet screen`` as a subprocess, killed (SIGKILL) once half the pool is
  recorded done, then the same command again: the inputs it says it carried over, its seconds, and whether
  ``candidates_stage1.csv``, ``dropped.csv`` and ``stage1/predictions.csv|.json`` equal the uninterrupted
  run's byte for byte.

``--repeat-members K`` uses every member of ``--ensemble`` K times (K x the members: the network cost of a
larger ensemble; the numbers are the same members' again).

    .venv/bin/python benchmarks/screen.py --ensemble /tmp/betenet-test-ensembles/<key>/sweep/cso \\
        --structures ../shared/data/betenet/structures --sizes 1000 10000 --kill

Last line: ``rate_ratio=<bare forward rate / screen rate, largest size> memory_ratio=<peak RSS largest /
smallest size>``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, machine_line, memory_mb, structure_files


def make_pool(folder: Path, files: list[Path], n: int) -> Path:
    """``folder`` with ``n`` links to ``files`` (cycled) under new ids."""
    if folder.is_dir() and len(list(folder.iterdir())) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for k in range(n):
        src = files[k % len(files)]
        os.symlink(src.resolve(), folder / f"m{k:07d}{src.suffix}")
    return folder


def _ensemble(args):
    from betenet.inference import load_ensemble

    return load_ensemble([args.ensemble] * args.repeat_members)


def child_screen(args) -> dict:
    from betenet.inference.screen import ScreenOptions, screen_inputs

    ensemble = _ensemble(args)
    shutil.rmtree(args.out, ignore_errors=True)
    t = time.perf_counter()
    res = screen_inputs(ensemble, [args.pool], args.out, ScreenOptions(chunk_size=args.chunk_size,
                                                                       batch_size=args.batch_size, progress=False))
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rate": res["inputs"] / seconds, "inputs": res["inputs"], "ranked": res["ranked"],
            "members": len(ensemble), **memory_mb()}


def child_whole(args) -> dict:
    """The path before streaming: every structure read and graphed, then the whole pool predicted at once."""
    from betenet.inference.inputs import build_rows
    from betenet.inference.stream import open_inputs

    ensemble = _ensemble(args)
    t = time.perf_counter()
    rows = build_rows(list(open_inputs([args.pool])), ensemble, None, progress=False)
    ok = [r for r in rows if r.graph is not None]
    ensemble.predict([r.graph for r in ok], batch_size=args.batch_size, progress=False, ids=[r.id for r in ok],
                     formulas=[r.formula for r in ok])
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rate": len(rows) / seconds, **memory_mb()}


def child_forward(args) -> dict:
    import torch
    from torch_geometric.data import Batch

    from betenet.inference.inputs import build_rows
    from betenet.inference.stream import chunked, open_inputs

    ensemble = _ensemble(args)
    batches, n = [], 0
    for chunk in chunked(open_inputs([args.pool]), args.chunk_size):
        graphs = [r.graph for r in build_rows(chunk, ensemble, None, progress=False) if r.graph is not None]
        n += len(graphs)
        batches += [Batch.from_data_list(graphs[i:i + args.batch_size]) for i in range(0, len(graphs), args.batch_size)]
    modules = [m.module.eval() for m in ensemble.members]
    evaluator = modules[0].net.evaluator
    t = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            prepared = evaluator.prepare(batch)  # once for every member, as the fused path allows
            for module in modules:
                module.net(batch, prepared=prepared)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rate": n / seconds, "structures": n}


def run_child(args, mode: str, pool: Path, out: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--pool", str(pool), "--ensemble", str(args.ensemble),
           "--repeat-members", str(args.repeat_members), "--chunk-size", str(args.chunk_size),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    if out is not None:
        cmd += ["--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        raise SystemExit(f"{mode} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def kill_and_rerun(args, pool: Path, out: Path, reference: Path, n: int) -> dict:
    """The CLI killed once half the pool is recorded, then run again (module docstring)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "betenet.cli", "screen", *(["--ensemble", str(args.ensemble)] * args.repeat_members),
           str(pool), "--out", str(out), "--chunk-size", str(args.chunk_size), "--batch-size", str(args.batch_size),
           "--threads", str(args.threads), "--json"]
    manifest = out / "stage1" / "predictions.csv.partial" / "manifest.json"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recorded = 0
    while proc.poll() is None and recorded < n // 2:
        try:
            recorded = json.loads(manifest.read_text())["counts"]["inputs"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    if proc.poll() is not None:
        raise SystemExit("the run ended before it was killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(f"rerun failed:\n{res.stderr[-3000:]}")
    summary = json.loads(res.stdout)
    said = [line for line in res.stderr.splitlines() if "carried over" in line]
    names = ("candidates_stage1.csv", "dropped.csv", "stage1/predictions.csv", "stage1/predictions.json")
    equal = all((out / f).read_bytes() == (reference / f).read_bytes() for f in names)
    return {"killed_at": recorded, "carried_over": summary["carried_over"], "said": said[0] if said else None,
            "rerun_seconds": seconds, "equal": equal}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ensemble", type=Path, required=True, help="a trained ensemble (sweep or run folder)")
    ap.add_argument("--structures", type=Path, default=None, help="structure folder the pools copy")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeat-members", type=int, default=1)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/betenet-screen-benchmark"))
    ap.add_argument("--kill", action="store_true", help="also kill a run half way and run it again")
    ap.add_argument("--whole", action="store_true",
                    help="also the path before streaming: the whole pool read, then predicted at once")
    ap.add_argument("--child", choices=["screen", "forward", "whole"], help=argparse.SUPPRESS)
    ap.add_argument("--pool", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    from betenet.runtime import configure

    configure(threads=args.threads)
    if args.child:
        import warnings

        warnings.filterwarnings("ignore", category=UserWarning, module=r"pymatgen(\..*)?")
        print(json.dumps({"screen": child_screen, "forward": child_forward, "whole": child_whole}[args.child](args)))
        return
    if args.structures is None:
        raise SystemExit("--structures is required")
    print(machine_line())
    files = structure_files(args.structures, None)
    rows = []
    for n in args.sizes:
        pool = make_pool(args.work / f"pool_{n}", files, n)
        load = os.getloadavg()[0]
        screen = run_child(args, "screen", pool, args.work / f"out_{n}")
        forward = run_child(args, "forward", pool)
        line = (f"N={n} members={screen['members']} load={load:.2f} screen_seconds={screen['seconds']:.1f} "
                f"screen_rate={screen['rate']:.1f} forward_rate={forward['rate']:.1f} "
                f"ratio={forward['rate'] / screen['rate']:.2f} peak_rss_MB={screen['peak_rss_MB']:.0f}")
        if args.whole:
            whole = run_child(args, "whole", pool)
            line += f" whole_rate={whole['rate']:.1f} whole_peak_rss_MB={whole['peak_rss_MB']:.0f}"
        if args.kill:
            k = kill_and_rerun(args, pool, args.work / f"kill_{n}", args.work / f"out_{n}", n)
            line += (f" killed_at={k['killed_at']} carried_over={k['carried_over']} "
                     f"rerun_seconds={k['rerun_seconds']:.1f} equal={k['equal']} said='{k['said']}'")
        print(line, flush=True)
        rows.append((screen, forward))
    (first, _), (last, last_forward) = rows[0], rows[-1]
    print(f"rate_ratio={last_forward['rate'] / last['rate']:.3f} "
          f"memory_ratio={last['peak_rss_MB'] / first['peak_rss_MB']:.3f}")


if __name__ == "__main__":
    main()
