"""Training output a person can read (issue 21): a member's console is betenet's own lines, a progress line
every N epochs off a terminal and the closing line; Lightning's per-epoch bars, its hardware lines and tips,
captured deprecation warnings and W&B's banner and summary stay out of it, and the run's train.log keeps
the third-party records."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_member_prints_a_few_lines_and_logs_the_rest(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BETENET_CACHE": str(tmp_path / "cache"),
           "WANDB_MODE": "offline"}
    res = subprocess.run([sys.executable, str(ROOT / "train.py"), "experiment=demo_tiny", "data.demo_size=16",
                          "trainer.max_epochs=120", "callbacks.progress.every_n_epochs=50", "logger=wandb",
                          f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    console = (res.stdout + res.stderr).splitlines()
    assert len(console) < 25, "\n".join(console)
    text = "\n".join(console)
    for chatter in ("Validation", "Epoch 0", "GPU available", "litlogger", "LeafSpec", "wandb: Run data",
                    "Run summary", "wandb sync"):
        assert chatter not in text, chatter
    assert "epoch 50: out-of-bag loss" in text and "member 0 (cso) done: kept the weights of epoch" in text
    for closing in ("regime reached: ", "why: ", "MAE ", "out-of-bag ", "test: not run (test_after_fit=false)"):
        assert closing in text, closing
    assert "final weights:" not in text  # said once, by the closing summary (train.log keeps the log line)
    assert "anonymous" not in text
    log = (tmp_path / "run" / "train.log").read_text()
    assert "GPU available" in log  # third-party information is kept in the log file
    assert "final weights:" in log and "closing summary" in log


def test_progress_refuses_a_zero_interval():
    from betenet.training.progress import EpochProgress

    with pytest.raises(ValueError, match="every_n_epochs"):
        EpochProgress(every_n_epochs=0)
