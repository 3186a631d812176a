"""Pretrained site features (issue 19): seconds per structure for the features of a universal potential.

The same selection as ``phonons.py speed`` (the first ``--limit`` ids of ``indices/idx_train_full.txt`` whose
file exists and parses), one structure after another in this process, model loaded once before (not in the
times), no cache: median and spread of seconds per structure, feature width, peak resident memory.

    python benchmarks/features.py --data ../shared/data/betenet --limit 50 [--model sevennet] [--threads 2]

Last line: ``median_seconds_per_structure=<float>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from common import add_runtime_args, apply_runtime_args, machine_line, memory_mb
from phonons import selection

from betenet.data.structures import load_structure
from betenet.errors import InputError
from betenet.pretrained import FeatureProvider, FeatureSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "betenet")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--model", default="sevennet")
    ap.add_argument("--layers", default="-1", help="comma-separated interaction blocks")
    ap.add_argument("--norms", action="store_true")
    add_runtime_args(ap)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    print(machine_line(), apply_runtime_args(args))
    files = selection(args.data, args.limit)
    settings = FeatureSettings(model=args.model, layers=tuple(int(k) for k in args.layers.split(",")),
                               norms=args.norms)
    provider = FeatureProvider(settings, cache_dir=False)
    t0 = time.perf_counter()
    provider.extractor  # noqa: B018  (load the model before timing)
    print(f"model load {time.perf_counter() - t0:.1f} s ({settings.key()['version']}); structures={len(files)} "
          f"({files[0].stem} .. {files[-1].stem}) blocks={list(settings.blocks)} norms={settings.norms} "
          f"width={settings.dim}")
    secs, atoms, failed = [], [], 0
    for path in files:
        s = load_structure(path)
        t = time.perf_counter()
        try:
            provider.compute(s, path.stem)
        except InputError as err:
            failed += 1
            print(f"  {err}")
        secs.append(time.perf_counter() - t)
        atoms.append(len(s))
    q = np.percentile(secs, [25, 75, 90])
    print(f"seconds per structure: median {statistics.median(secs):.4f}, quartiles {q[0]:.4f}/{q[1]:.4f}, "
          f"p90 {q[2]:.4f}, max {max(secs):.4f} ({atoms[int(np.argmax(secs))]} atoms), total {sum(secs):.2f}; "
          f"atoms per cell: median {statistics.median(atoms)}, max {max(atoms)}; failed {failed}")
    print(f"memory: {json.dumps({k: round(v) for k, v in memory_mb().items()})}")
    print(f"median_seconds_per_structure={statistics.median(secs):.4f}")


if __name__ == "__main__":
    main()
