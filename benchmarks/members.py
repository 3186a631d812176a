"""Several ensemble members trained at once on one machine or one GPU, as separate processes (issue 6).

Starts ``--members`` copies of ``epoch_time.py`` (the same graphs, full-batch training at the paper's
hyperparameters, seeds 0..K-1) side by side, each with ``--threads`` torch threads, on the CPU or on one
GPU; their timed epochs start together (a file barrier after graph building). Reports every member's seconds
per epoch and the throughput of the machine:

    member_epochs_per_hour = sum over members of 3600 / seconds_per_epoch
    members_per_hour       = member_epochs_per_hour / --member-epochs

``--member-epochs`` defaults to the paper's epoch budget per member (conf/experiment/paper.yaml,
``trainer.max_epochs``); members stopped earlier by patience cost less. Training with the same layout:
``python train.py seed='range(100)' -m hydra/launcher=joblib hydra.launcher.n_jobs=K runtime.threads=T``.

    python benchmarks/members.py --structures ../shared/data/betenet/structures --members 2 --threads 1
    python benchmarks/members.py --structures ... --members 4 --device cuda   # several members on one GPU

Its last line is ``member_epochs_per_hour=<float>``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

HERE = Path(__file__).resolve().parent
PAPER_CONF = HERE.parent / "conf" / "experiment" / "paper.yaml"


def paper_epochs() -> int:
    """The paper's maximum epochs per member, from conf/experiment/paper.yaml."""
    return int(OmegaConf.load(PAPER_CONF).trainer.max_epochs)


def parse_seconds(output: str) -> float:
    match = re.search(r"^seconds_per_epoch=([0-9.eE+-]+)\s*$", output, flags=re.MULTILINE)
    if not match:
        raise RuntimeError("no seconds_per_epoch line in the member's output:\n" + output[-2000:])
    return float(match.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--structures", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=651)
    ap.add_argument("--members", type=int, default=2, help="members trained at once (processes)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per member")
    ap.add_argument("--epochs", type=int, default=12, help="epochs per member in this measurement")
    ap.add_argument("--variant", default="cso", choices=("cso", "cpd", "fpd"))
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--member-epochs", type=int, default=None,
                    help="epochs one member trains, for members_per_hour (default: the paper's maximum)")
    args = ap.parse_args()
    if args.members < 1 or args.threads < 1 or args.epochs < 2:
        raise SystemExit("--members and --threads must be >= 1, --epochs >= 2")
    member_epochs = args.member_epochs or paper_epochs()

    with tempfile.TemporaryDirectory() as barrier:
        cmd = [sys.executable, str(HERE / "epoch_time.py"), "--structures", str(args.structures),
               "--limit", str(args.limit), "--epochs", str(args.epochs), "--variant", args.variant,
               "--dtype", args.dtype, "--device", args.device, "--threads", str(args.threads),
               "--barrier", barrier, "--barrier-count", str(args.members)]
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd + ["--seed", str(k)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for k in range(args.members)]
        outputs = [p.communicate()[0] for p in procs]
        wall = time.perf_counter() - t0
    failed = [k for k, p in enumerate(procs) if p.returncode != 0]
    if failed:
        for k in failed:
            print(f"member {k} failed (exit {procs[k].returncode}):\n{outputs[k][-3000:]}", file=sys.stderr)
        raise SystemExit(1)

    seconds = [parse_seconds(out) for out in outputs]
    machine = next(line for line in outputs[0].splitlines() if line.startswith("date="))
    print(machine)
    for line in outputs[0].splitlines():
        if line.startswith(("structures=", "device=")):
            print(line)
    print(f"members={args.members} threads_per_member={args.threads} device={args.device} variant={args.variant} "
          f"dtype={args.dtype} epochs={args.epochs} wall_s={wall:.1f}")
    print("seconds_per_epoch_by_member=" + ",".join(f"{s:.4f}" for s in seconds))
    per_hour = sum(3600.0 / s for s in seconds)
    print(f"median_seconds_per_epoch={statistics.median(seconds):.4f}")
    print(f"members_per_hour={per_hour / member_epochs:.3f} (at {member_epochs} epochs per member)")
    print(f"member_epochs_per_hour={per_hour:.0f}")


if __name__ == "__main__":
    main()
