"""What training tells a person at its end (issue 21), without training: a member's closing summary (regime
reached, the epoch kept and why, out-of-bag and test MAE of λ, ω_log and Tc), a sweep's summary that counts
failed and refused members by variant, and what W&B gets (the kept epoch's values, no `anonymous` warning)."""

import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from betenet.training.closing import closing_lines, closing_summary, kept_epoch
from betenet.training.sweep import outcome_of, summarise_jobs, summary_lines
from betenet.training.wandb_records import kept_summary

REGIMES_MODERN = {
    "regimes": {"classical": {"epoch": 30, "value": 0.05, "raw": 0.051},
                "critical": {"epoch": 140, "value": 0.09, "raw": 0.091},
                "modern": {"epoch": 812, "value": 0.03, "raw": 0.031}},
    "final_regime": "modern", "kept_epoch": 812, "best_epoch": 790, "epochs_run": 1000,
    "stop_reason": "no new modern minimum for 188 epochs (modern minimum at epoch 812)",
    "test": {"test_loss": 0.04, "test_mae_lambda": 0.0501, "test_mae_omega_log_K": 14.1, "test_mae_omega_2_K": 20.0,
             "test_mae_tc_K": 0.953},
}
REGIMES_PLATEAU = {
    "regimes": {"classical": {"epoch": 12, "value": 0.05, "raw": 0.05},
                "critical": {"epoch": 20, "value": 0.06, "raw": 0.06}},
    "final_regime": "best", "best_epoch": 11, "epochs_run": 25, "stop_reason": "max_epochs reached",
}


def rows(epochs, **values):
    return [{"epoch": str(e), "val_loss": "0.1", "train_loss": "0.01", **{k: str(v) for k, v in values.items()}}
            for e in epochs]


# --------------------------------------------------------------------------------------------
# closing summary
# --------------------------------------------------------------------------------------------
def test_closing_summary_of_a_member_with_a_second_descent():
    metrics = rows(range(1000))
    metrics[812] = {"epoch": "812", "val_loss": "0.031", "train_loss": "0.002", "val_mae_lambda": "0.0412",
                    "val_mae_omega_log_K": "12.3", "val_mae_omega_2_K": "15", "val_mae_tc_K": "0.812"}
    result = closing_summary(REGIMES_MODERN, metrics, n_out_of_bag=48, n_test=60)
    assert result["kept_epoch"] == 812 and result["kept"] == "the modern minimum" and result["second_descent"]
    assert result["regime_reached"] == "modern"
    assert result["epochs"] == {"classical_minimum": 30, "critical_peak": 140, "modern_minimum": 812,
                                "best_out_of_bag": 790, "run": 1000}
    assert result["out_of_bag"]["loss"] == 0.031 and result["out_of_bag"]["mae"]["lambda"] == 0.0412
    assert result["test"]["mae"] == {"lambda": 0.0501, "omega_log_K": 14.1, "omega_2_K": 20.0, "tc_K": 0.953}
    text = "\n".join(closing_lines(result, "member 0 (cso)", "outputs/demo/cso/seed_0"))
    assert text.startswith("member 0 (cso) done: kept the weights of epoch 812, the modern minimum")
    assert "regime reached: modern (a second descent came after the critical peak at epoch 140)" in text
    assert "why: tempered training keeps the modern minimum" in text
    assert ("epochs: classical minimum 30, critical peak 140, modern minimum 812 (smoothed out-of-bag loss); "
            "best out-of-bag epoch 790 (unsmoothed); 1000 epochs run") in text
    table = [line.split() for line in text.splitlines() if line.lstrip().startswith(("MAE", "out-of-bag ", "test "))]
    assert table[0] == ["MAE", "lambda", "omega_log", "(K)", "Tc", "(K)"]
    assert table[1][:4] == ["out-of-bag", "0.0412", "12.3", "0.812"] and "48" in table[1]
    assert table[2][:4] == ["test", "0.0501", "14.1", "0.953"] and "(60" in table[2]
    assert text.isascii()  # any terminal prints it


def test_closing_summary_without_a_second_descent_says_so_and_why():
    result = closing_summary(REGIMES_PLATEAU, rows(range(25), val_mae_tc_K=1.5), n_out_of_bag=10,
                             test_note="not run (test_after_fit=false)")
    assert result["kept_epoch"] == 11 == kept_epoch(REGIMES_PLATEAU)
    assert result["kept"] == "the best out-of-bag epoch" and not result["second_descent"]
    assert result["regime_reached"] == "critical" and result["test"] is None
    text = "\n".join(closing_lines(result, "member 3 (cpd)", "run"))
    assert "kept the weights of epoch 11, the best out-of-bag epoch" in text
    assert "no second descent" in text and "never came down again" in text
    assert "critical peak" not in text  # no peak to name on a curve that never came down again
    assert "test: not run (test_after_fit=false)" in text
    # Tc-only data: only the Tc column (λ and ω_log were never known)
    assert "Tc (K)" in text and "lambda" not in text and "omega_log" not in text


def test_closing_summary_of_a_member_that_never_rose():
    regimes = {"regimes": {"classical": {"epoch": 24, "value": 0.1, "raw": 0.1}}, "final_regime": "best",
               "best_epoch": 24, "epochs_run": 25, "stop_reason": "max_epochs reached"}
    result = closing_summary(regimes, rows(range(25)))
    assert result["regime_reached"] == "classical" and result["kept_epoch"] == 24
    text = "\n".join(closing_lines(result, "member 0 (cso)", "run"))
    assert "never rose above its first minimum" in text
    assert "out-of-bag loss 0.1 at epoch 24" in text  # no MAE logged: the loss instead


def test_wandb_summary_holds_the_kept_epochs_values():
    metrics = rows(range(1000))
    metrics[812] = {"epoch": "812", "val_loss": "0.031", "train_loss": "0.002", "val_mae_tc_K": "0.812"}
    summary = kept_summary(closing_summary(REGIMES_MODERN, metrics))
    assert summary["val_loss"] == 0.031 and summary["train_loss"] == 0.002 and summary["kept_epoch"] == 812
    assert summary["val_mae_tc_K"] == 0.812 and summary["test_mae_lambda"] == 0.0501
    assert summary["regime_reached"] == "modern" and summary["second_descent"] is True


def test_file_only_records_stay_off_the_console():
    from betenet.runtime import FILE_ONLY, ConsoleFilter

    def record(name, level=logging.INFO, **extra):
        rec = logging.LogRecord(name, level, __file__, 1, "x", None, None)
        rec.__dict__.update(extra)
        return rec

    f = ConsoleFilter()
    assert f.filter(record("betenet.training.run"))
    assert not f.filter(record("betenet.training.run", **FILE_ONLY))
    assert not f.filter(record("pytorch_lightning"))
    assert f.filter(record("pytorch_lightning", logging.ERROR))


# --------------------------------------------------------------------------------------------
# sweep summary
# --------------------------------------------------------------------------------------------
def job(num, path, variant, seed, state, reason=None):
    return {"job": num, "path": str(path), "variant": variant, "seed": seed,
            "overrides": [f"variant={variant}", f"seed={seed}"], "state": state, "reason": reason, "wandb": None}


def test_sweep_summary_counts_failed_and_refused_members_by_variant(tmp_path):
    records = [job(0, tmp_path / "cso" / "seed_0", "cso", 0, "complete"),
               job(1, tmp_path / "cso" / "seed_0", "cso", 1, "refused",
                   f"{tmp_path}/cso/seed_0: this run folder holds another member (seed: 0 in the folder, 1 requested)"),
               job(2, tmp_path / "cpd" / "seed_0", "cpd", 0, "complete"),
               job(3, tmp_path / "cpd" / "seed_1", "cpd", 1, "failed", "ValueError: no usable entries"),
               job(4, tmp_path / "cpd" / "seed_2", "cpd", 2, "started")]
    summary = summarise_jobs(tmp_path, records)
    assert summary["counts"] == {"complete": 2, "failed": 1, "refused": 1, "incomplete": 1}
    assert summary["complete"] == ["cso/seed_0", "cpd/seed_0"] and summary["refused"] == ["cso/seed_0"]
    assert summary["failed"] == ["cpd/seed_1"] and summary["incomplete"] == ["cpd/seed_2"]
    assert list(summary["by_variant"]) == ["cpd", "cso"]
    assert summary["by_variant"]["cso"]["counts"] == {"complete": 1, "failed": 0, "refused": 1, "incomplete": 0}
    assert summary["by_variant"]["cpd"]["failed"] == ["cpd/seed_1"]
    assert [j["reason"] for j in summary["jobs"] if j["state"] == "failed"] == ["ValueError: no usable entries"]
    lines = summary_lines(summary)
    assert lines[0] == f"sweep {tmp_path}: 2 complete, 3 failed/refused (1 failed, 1 refused, 1 incomplete)"
    assert "  cpd: 1 complete, 1 failed, 1 incomplete" in lines and "  cso: 1 complete, 1 refused" in lines
    refused = next(line for line in lines if line.lstrip().startswith("refused"))
    assert "cso/seed_0 (variant=cso seed=1)" in refused and "holds another member" in refused
    assert any("killed or out of time" in line for line in lines)


def test_a_clean_sweep_says_so(tmp_path):
    summary = summarise_jobs(tmp_path, [job(0, tmp_path / "seed_0", "cso", 0, "complete")])
    assert summary_lines(summary) == [f"sweep {tmp_path}: 1 complete, 0 failed/refused", "  cso: 1 complete"]


def test_a_jobs_outcome_is_what_train_returned_or_its_exception():
    from hydra.core.utils import JobReturn, JobStatus

    done = JobReturn(status=JobStatus.COMPLETED)
    done.return_value = {"state": "refused", "reason": "busy", "summary": None}
    assert outcome_of(done) == ("refused", "busy")
    raised = JobReturn(status=JobStatus.FAILED)
    raised.return_value = RuntimeError("out of memory\nmore")
    assert outcome_of(raised) == ("failed", "RuntimeError: out of memory")
    nothing = JobReturn(status=JobStatus.COMPLETED)
    nothing.return_value = None
    assert outcome_of(nothing)[0] == "failed"


def test_members_tags_name_variant_experiment_and_features():
    from betenet.training.wandb_records import member_tags

    cfg = {"name": "demo", "variant": {"name": "cpd"}, "features": {"name": "sevennet"}}
    assert member_tags(cfg) == ["variant:cpd", "experiment:demo", "features:sevennet"]
    assert member_tags(SimpleNamespace(get=lambda k, d=None: {"name": "x"}.get(k, d)))[2] == "features:none"


@pytest.mark.slow
def test_the_wandb_logger_prints_no_anonymous_warning(tmp_path):
    """Lightning hands `anonymous` to wandb.init, which then warns that it has no effect; betenet's logger
    does not (W&B's lines shown: WANDB_SILENT=false)."""
    code = ("from betenet.training.wandb_records import WandbLogger\n"
            f"lg = WandbLogger(project='p', save_dir={str(tmp_path)!r}, offline=True)\n"
            "lg.experiment.finish()\n")
    env = dict(os.environ, HOME=str(tmp_path), WANDB_MODE="offline", WANDB_SILENT="false")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "wandb" in res.stdout + res.stderr  # W&B did speak
    assert "anonymous" not in res.stdout + res.stderr
