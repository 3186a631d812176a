"""Seconds per full-batch training epoch of BETE-NET on real structures (issue 6).

Graphs of the first ``--limit`` structures of ``--structures`` (numeric file order) with random 51-bin
targets (random site PhDOS too for cpd/fpd), a ``BetenetModule`` from conf/ (the paper's hyperparameters:
``model=betenet``, the chosen variant and dtype) and a ``pytorch_lightning.Trainer`` fitting the
pre-collated full batch through the project's own loader (``betenet.data.datamodule``): forward, MSE,
backward and AdamW step per epoch, validation and checkpoints off.

    python benchmarks/epoch_time.py --structures ../shared/data/betenet/structures --limit 651 --epochs 5

Prints the machine line, the graph sizes, every epoch's wall time, the peak memory, and as its last line
``seconds_per_epoch=<median wall time of the epochs after the first>`` (the first epoch also prepares the
graph's constant parts, reported separately as ``first_epoch_s``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from common import (add_runtime_args, apply_runtime_args, build_graphs, machine_line, make_module,
                    num_neighbors, memory_mb, model_config, structure_files)
from betenet.data.datamodule import full_batch_loader
from betenet.data.graphs import graph_stats


class EpochTimer(pl.Callback):
    """Wall and CPU seconds of every training epoch (on a GPU, after the device has finished its work)."""

    def __init__(self, device: str = "cpu") -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.sync()
        self._t, self._c = time.perf_counter(), time.process_time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.sync()
        self.wall.append(time.perf_counter() - self._t)
        self.cpu.append(time.process_time() - self._c)


def wait_at_barrier(folder: Path, count: int, timeout_s: float = 600.0) -> None:
    """Mark this process ready in ``folder`` and wait until ``count`` processes are (benchmarks/members.py
    starts the timed epochs of all members together)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"ready_{os.getpid()}").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(folder.glob("ready_*"))) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"barrier {folder}: fewer than {count} processes ready after {timeout_s:.0f} s")
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--structures", type=Path, required=True, help="folder of structure files (<id>.cif)")
    ap.add_argument("--limit", type=int, default=651, help="first N structures in numeric order (default 651)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--variant", default="cso", choices=("cso", "cpd", "fpd"))
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    add_runtime_args(ap)
    ap.add_argument("--straightforward", action="store_true",
                    help="evaluate the network through the e3nn modules (fused=False), the reference path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--barrier", type=Path, default=None, help=argparse.SUPPRESS)  # set by members.py
    ap.add_argument("--barrier-count", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")

    print(apply_runtime_args(args))
    print(machine_line())
    t0 = time.perf_counter()
    graphs = build_graphs(structure_files(args.structures, args.limit), args.variant, seed=args.seed)
    stats = graph_stats(graphs)
    print(f"structures={stats['graphs']} atoms={stats['atoms']} edges={stats['edges']} "
          f"graph_build_s={time.perf_counter() - t0:.2f}")

    pl.seed_everything(args.seed, verbose=False)
    module = make_module(model_config(args.variant, args.dtype), num_neighbors(graphs),
                         fused=not args.straightforward)
    loader = full_batch_loader(graphs)
    timer = EpochTimer(args.device)
    if args.barrier:
        wait_at_barrier(args.barrier, args.barrier_count)
    trainer = pl.Trainer(max_epochs=args.epochs, accelerator="gpu" if args.device == "cuda" else "cpu",
                         devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer])
    before = memory_mb()
    trainer.fit(module, train_dataloaders=loader)
    after = memory_mb()

    path = "straightforward (e3nn modules)" if args.straightforward else "fused"
    print(f"variant={args.variant} dtype={args.dtype} path={path} epochs={len(timer.wall)}")
    print("epoch_wall_s=" + ",".join(f"{t:.3f}" for t in timer.wall))
    print("epoch_cpu_s=" + ",".join(f"{t:.3f}" for t in timer.cpu))
    print(f"first_epoch_s={timer.wall[0]:.3f} rss_before_training_MB={before.get('rss_MB', float('nan')):.0f} "
          f"peak_rss_MB={after['peak_rss_MB']:.0f}")
    if args.device == "cuda":
        print(f"device={torch.cuda.get_device_name()} peak_cuda_MB={torch.cuda.max_memory_allocated() / 2**20:.0f}")
    rest = timer.wall[1:] or timer.wall
    print(machine_line())
    print(f"seconds_per_epoch={statistics.median(rest):.4f}")


if __name__ == "__main__":
    main()
