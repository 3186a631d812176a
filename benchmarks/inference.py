"""Ensemble inference throughput of BETE-NET (issue 6): structures per second for N members over M structures.

Members are ``BetenetModule`` instances built from conf/ (paper hyperparameters, chosen variant) with random
initialisation (seeds 0..N-1): the speed does not depend on trained values. Every batch of ``--batch-size``
graphs is predicted by every member (eval mode, ``torch.inference_mode``) and reduced to the ensemble mean
and standard deviation, as a screening run does.

    python benchmarks/inference.py --structures ../shared/data/betenet/structures --members 10 --limit 651

Reported, each as structures per second over the M structures:
* ``with_graphs``: structure files -> graphs -> batches -> N members -> mean/std;
* ``without_graphs``: the same from graphs already built (batches collated in the loop), the fused path
  preparing each batch's constant parts once for all members;
* ``warm``: the same batches again (prepared parts reused: repeated predictions on one set).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch_geometric.data import Batch

from common import (add_runtime_args, apply_runtime_args, build_graphs, machine_line, make_module,
                    num_neighbors, memory_mb, model_config, structure_files)


def predict(members, batches) -> tuple[float, list[torch.Tensor]]:
    """Seconds to predict every batch with every member; the per-batch ensemble means.

    On the fused path the first member's evaluator prepares each batch (kept in its cache, so warm batches are
    not prepared again) and every member evaluates that preparation. Batches are already in the members' dtype.
    """
    means = []
    t = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            batch = batch if isinstance(batch, Batch) else batch()  # a Batch, or a function collating one
            lead = members[0].net
            prepared = lead.evaluator.prepared_graph(batch) if lead.fused else None
            preds = torch.stack([m.net(batch, prepared=prepared) for m in members])  # [members, graphs, 51]
            means.append(preds.mean(0))
            preds.std(0, unbiased=False)
    return time.perf_counter() - t, means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--structures", type=Path, required=True)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--limit", type=int, default=651, help="first M structures in numeric order")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--variant", default="cso", choices=("cso", "cpd", "fpd"))
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    add_runtime_args(ap)
    ap.add_argument("--straightforward", action="store_true", help="e3nn modules (fused=False)")
    args = ap.parse_args()

    print(apply_runtime_args(args))
    print(machine_line())
    files = structure_files(args.structures, args.limit)
    t0 = time.perf_counter()
    graphs = build_graphs(files, args.variant)
    t_graphs = time.perf_counter() - t0
    m = len(graphs)
    cfg = model_config(args.variant, args.dtype)
    members = []
    for seed in range(args.members):
        torch.manual_seed(seed)
        members.append(make_module(cfg, num_neighbors(graphs), fused=not args.straightforward).eval())
    chunks = [graphs[i:i + args.batch_size] for i in range(0, m, args.batch_size)]
    if args.dtype == "float64":  # the module casts its inputs; cast once here so warm batches stay identical
        for g in graphs:
            for key in ("x", "attr", "edge_vec", "y"):
                g[key] = g[key].double()

    t_cold, _ = predict(members, [lambda c=c: Batch.from_data_list(c) for c in chunks])
    batches = [Batch.from_data_list(c) for c in chunks]
    predict(members, batches)  # prepares every batch
    t_warm, _ = predict(members, batches)

    path = "straightforward (e3nn modules)" if args.straightforward else "fused"
    print(f"variant={args.variant} dtype={args.dtype} path={path} members={args.members} structures={m} "
          f"batch_size={args.batch_size}")
    print(f"graph_build_s={t_graphs:.2f} predict_cold_s={t_cold:.2f} predict_warm_s={t_warm:.2f} "
          f"peak_rss_MB={memory_mb()['peak_rss_MB']:.0f}")
    print(machine_line())
    print(f"with_graphs={m / (t_graphs + t_cold):.2f} without_graphs={m / t_cold:.2f} warm={m / t_warm:.2f} "
          "(structures per second)")


if __name__ == "__main__":
    main()
