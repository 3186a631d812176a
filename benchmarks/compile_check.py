"""Does ``torch.compile`` help BETE-NET training on this machine? Compile time and seconds per step (issue 6).

Times full-batch steps (forward, MSE, backward, AdamW) of the paper network on the first ``--limit``
structures, eager and under ``torch.compile`` (default inductor backend), for the fused or the
straightforward (``--straightforward``) evaluation. The first compiled step includes the compilation.

    python benchmarks/compile_check.py --structures ../shared/data/betenet/structures --limit 651 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch_geometric.data import Batch

from common import build_graphs, machine_line, num_neighbors, structure_files
from betenet.models.network import BeteNet


def steps(net, batch, n: int) -> list[float]:
    opt = torch.optim.AdamW(net.parameters(), lr=0.005)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        opt.zero_grad()
        loss = ((net(batch) - batch.y) ** 2).mean()
        loss.backward()
        opt.step()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--structures", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=651)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--straightforward", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_line())
    graphs = build_graphs(structure_files(args.structures, args.limit))
    batch = Batch.from_data_list(graphs)
    kw = dict(share_embedding=True, num_neighbors=num_neighbors(graphs), fused=not args.straightforward)
    path = "straightforward" if args.straightforward else "fused"

    torch.manual_seed(0)
    eager = steps(BeteNet(**kw), batch, args.steps)
    print(f"path={path} eager_step_s=" + ",".join(f"{t:.3f}" for t in eager))
    torch.manual_seed(0)
    compiled_net = torch.compile(BeteNet(**kw))
    try:
        compiled = steps(compiled_net, batch, args.steps)
    except Exception as err:  # report, do not hide: whether compile works here is the question
        print(f"compile_failed={type(err).__name__}: {str(err).splitlines()[0][:200]}")
        return
    print(f"path={path} compiled_step_s=" + ",".join(f"{t:.3f}" for t in compiled))
    print(machine_line())
    print(f"first_compiled_step_s={compiled[0]:.1f} eager_s_per_step={statistics.median(eager[1:]):.4f} "
          f"compiled_s_per_step={statistics.median(compiled[1:]):.4f}")


if __name__ == "__main__":
    main()
