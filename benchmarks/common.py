"""Shared helpers of the benchmark scripts: structure files in numeric order, random-target graphs, models from
conf/, machine description and memory figures. Not part of the package; imported by the scripts beside it.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from betenet.data.graphs import graph_stats, structure_to_graph  # noqa: E402
from betenet.data.structures import load_structure  # noqa: E402
from betenet.physics.units import N_BINS  # noqa: E402

#: Variants whose node attributes carry a site-projected PhDOS (random here: only the shapes matter).
SITE_DOS_VARIANTS = ("cpd", "fpd")


def add_runtime_args(ap) -> None:
    """``--threads`` and ``--no-keep-freed-memory``: the process settings of betenet/runtime.py (training's
    defaults)."""
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--no-keep-freed-memory", dest="keep_memory", action="store_false",
                    help="leave glibc's allocator at its defaults "
                         "(training keeps freed memory: runtime.keep_freed_memory)")


def apply_runtime_args(args) -> str:
    """Apply :func:`add_runtime_args`' settings; returns them as a line for the output."""
    from betenet.runtime import configure

    report = configure(threads=args.threads, keep_memory=args.keep_memory)
    return f"threads={report.threads} keep_freed_memory={report.keep_freed_memory}"


def structure_files(folder: Path, limit: int | None) -> list[Path]:
    """Structure files of ``folder`` in numeric order of their stem (``10.cif`` after ``9.cif``); first ``limit``."""
    suffixes = {".cif", ".vasp", ".poscar", ".xyz", ".extxyz"}
    files = [p for p in Path(folder).iterdir() if p.suffix.lower() in suffixes or p.name.upper() == "POSCAR"]
    if not files:
        raise SystemExit(f"no structure files in {folder}")
    files.sort(key=lambda p: (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem))
    return files[:limit] if limit else files


def build_graphs(files: list[Path], variant: str = "cso", r_max: float = 4.0, seed: int = 0) -> list:
    """Graphs of the structures with random targets: a2F bins (and, for cpd/fpd, site PhDOS) uniform in [0, 1).

    Atoms without a neighbour keep only their self-edge (``allow_isolated``), as the release did.
    """
    rng = np.random.default_rng(seed)
    graphs = []
    for path in files:
        structure = load_structure(path)
        site_dos = rng.random((len(structure), N_BINS)) if variant in SITE_DOS_VARIANTS else None
        g = structure_to_graph(structure, r_max=r_max, self_loops=True, site_dos=site_dos,
                               y=rng.random(N_BINS), id=path.stem, allow_isolated=True)
        g.reported = torch.full((1, 4), float("nan"))
        g.weight = torch.ones(1)
        graphs.append(g)
    return graphs


def model_config(variant: str, dtype: str, overrides: list[str] | None = None):
    """The composed ``model`` group of conf/ (paper hyperparameters) for a variant and dtype."""
    from betenet.config import compose

    return compose([f"variant={variant}", f"model.dtype={dtype}"] + list(overrides or [])).model


def make_module(model_cfg, num_neighbors: float, fused: bool = True):
    """A ``BetenetModule`` instantiated from the config (random initialisation)."""
    import hydra
    from omegaconf import open_dict

    cfg = model_cfg.copy()
    with open_dict(cfg):
        cfg.net.num_neighbors = float(num_neighbors)
        cfg.net.fused = bool(fused)
    return hydra.utils.instantiate(cfg)


def num_neighbors(graphs) -> float:
    return float(graph_stats(graphs)["num_neighbors"])


def memory_mb() -> dict:
    """Current and peak resident memory of this process (MB), from /proc/self/status (Linux)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_MB" if key == "VmRSS" else "peak_rss_MB"] = int(value.split()[0]) / 1024
    except OSError:
        import resource

        out["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line() -> str:
    """Date, CPU, cores, torch threads and load average: the context every recorded figure needs."""
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"date={date.today().isoformat()} cpu='{cpu_model()}' cores={os.cpu_count()} "
            f"torch={torch.__version__} threads={torch.get_num_threads()} loadavg={load}")
