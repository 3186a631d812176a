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
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from common import (add_runtime_args, apply_runtime_args, build_graphs, machine_line, make_module,
                    mean_neighbours, memory_mb, model_config, structure_files)
from betenet.data.datamodule import full_batch_loader
from betenet.data.graphs import graph_stats


class EpochTimer(pl.Callback):
    """Wall and CPU seconds of every training epoch."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t, self._c = time.perf_counter(), time.process_time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.wall.append(time.perf_counter() - self._t)
        self.cpu.append(time.process_time() - self._c)


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
    args = ap.parse_args()

    print(apply_runtime_args(args))
    print(machine_line())
    t0 = time.perf_counter()
    graphs = build_graphs(structure_files(args.structures, args.limit), args.variant, seed=args.seed)
    stats = graph_stats(graphs)
    print(f"structures={stats['graphs']} atoms={stats['atoms']} edges={stats['edges']} "
          f"graph_build_s={time.perf_counter() - t0:.2f}")

    pl.seed_everything(args.seed, verbose=False)
    module = make_module(model_config(args.variant, args.dtype), mean_neighbours(graphs),
                         fused=not args.straightforward)
    loader = full_batch_loader(graphs)
    timer = EpochTimer()
    trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False,
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
    rest = timer.wall[1:] or timer.wall
    print(machine_line())
    print(f"seconds_per_epoch={statistics.median(rest):.4f}")


if __name__ == "__main__":
    main()
