"""Build the ensemble that ships inside betenet as ``jarvis-tc`` (README, "Shipped ensemble"): the
``experiment=jarvis_tc`` recipe trained on all 586 JARVIS-DFT entries, ``--members`` bootstrap members
(out-of-bag validation, the best out-of-bag epoch), calibrated on their out-of-bag predictions, then
the files prediction needs copied into ``betenet/shipped/jarvis_tc/``:

    python experiments/ship_jarvis_tc.py --members 8 --jobs 2

Per member: ``checkpoints/final.ckpt`` (weights; loaded with ``weights_only``), ``config_resolved.yaml``
(the recipe: variant, features, phonon settings), ``member.json`` (fingerprint, training elements) and
``bootstrap.json`` (the ids it trained on); plus the ensemble's ``calibration.json``. The training runs
stay in ``--work`` (default ``multirun/ship_jarvis_tc``), so a rerun trains nothing already finished.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "betenet" / "shipped" / "jarvis_tc"
MEMBER_FILES = ("checkpoints/final.ckpt", "config_resolved.yaml", "member.json", "bootstrap.json")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "jarvis-tc"))
    p.add_argument("--work", default=str(ROOT / "multirun" / "ship_jarvis_tc"))
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("overrides", nargs="*", help="train.py overrides on top of experiment=jarvis_tc")
    args = p.parse_args(argv)
    data, work = Path(args.data).resolve(), Path(args.work).resolve()
    with open(data / "labels.csv", newline="") as fh:
        ids = [r["id"] for r in csv.DictReader(fh)]
    work.mkdir(parents=True, exist_ok=True)
    split = work / "all_train.json"
    split.write_text(json.dumps({"train": ids, "test": []}))

    def train(seed: int) -> None:
        cmd = [sys.executable, str(ROOT / "train.py"), "experiment=jarvis_tc", f"data.root={data}",
               f"data.splits_file={split}", *args.overrides, f"seed={seed}", f"hydra.run.dir={work / f'seed_{seed}'}",
               "runtime.threads=1", "logger=none", "trainer.enable_progress_bar=false", "test_after_fit=false"]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"member {seed} failed:\n{res.stderr[-3000:]}")
        print(f"member {seed}: done")

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(train, range(args.members)))
    res = subprocess.run([sys.executable, "-m", "betenet.cli", "calibrate", "--ensemble", str(work), "--json"],
                         cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"calibrate failed:\n{res.stderr[-3000:]}")
    print(res.stdout)
    if TARGET.exists():
        shutil.rmtree(TARGET)
    for seed in range(args.members):
        for name in MEMBER_FILES:
            dest = TARGET / f"seed_{seed}" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / f"seed_{seed}" / name, dest)
    shutil.copy2(work / "calibration.json", TARGET / "calibration.json")
    size = sum(f.stat().st_size for f in TARGET.rglob("*") if f.is_file())
    print(f"shipped {args.members} members to {TARGET.relative_to(ROOT)} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
