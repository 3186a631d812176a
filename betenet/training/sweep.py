"""Hydra callback for multiruns: count what became of each member of *this* sweep, summarise it by
variant, draw the overlay figure, give each W&B group of the sweep its summary run
(betenet/training/wandb_records.py), and make the command exit non-zero when a member did not complete.

Every job of the multirun leaves a record in the sweep folder's ``.betenet_jobs/<job number>.json``
(written by the job's own process, whatever the launcher): its member folder, variant, seed and
overrides, and its outcome, the value ``train.py`` returned (:func:`betenet.training.run.train_member_safely`):

* ``complete``: trained to its final weights now, or found complete;
* ``failed``: training raised (``FAILED.txt`` in its folder holds the traceback);
* ``refused``: its run folder was busy or held another member, so nothing was written;
* ``incomplete``: the job started but left no outcome (killed, out of time).

The records are cleared when a multirun starts, so the summary counts this sweep's jobs, not whatever
else lies in the sweep folder. ``sweep_summary.json`` holds the counts, the members by state (named by
their folder relative to the sweep folder), the same per variant (``by_variant``) and every job with
its reason (``jobs``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from betenet.files import natural_key, write_json
from betenet.training.run_dir import RunDir

log = logging.getLogger(__name__)

#: The sweep folder's own outputs.
SUMMARY = "sweep_summary.json"
OVERLAY = "double_descent_overlay.png"
#: Hidden folder of the sweep (RunDir.find skips it) with one record per job of the current multirun.
JOBS = ".betenet_jobs"
#: Where the jobs write their records: set by the multirun's process, inherited by the jobs' processes.
JOBS_ENV = "BETENET_SWEEP_JOBS"
COMPLETE, FAILED, REFUSED, INCOMPLETE = "complete", "failed", "refused", "incomplete"
STATES = (COMPLETE, FAILED, REFUSED, INCOMPLETE)
#: A job that started and has not (yet) left its outcome.
STARTED = "started"


# --------------------------------------------------------------------------------------------
# job records
# --------------------------------------------------------------------------------------------
def jobs_dir(config: DictConfig) -> Path:
    """The job records' folder of the running multirun (:data:`JOBS_ENV`, else under the job's sweep folder)."""
    return Path(os.environ.get(JOBS_ENV) or Path(str(config.hydra.sweep.dir)) / JOBS)


def _wandb_group(config: DictConfig) -> dict | None:
    try:
        wandb_cfg = (config.get("logger") or {}).get("wandb")
        if wandb_cfg is None or not wandb_cfg.get("project") or not wandb_cfg.get("group"):
            return None
        return {"project": str(wandb_cfg.project), "group": str(wandb_cfg.group)}
    except Exception:  # an interpolation that does not resolve: no W&B group for this job
        return None


def job_record(config: DictConfig, state: str, reason: str | None = None) -> dict:
    """A job's record from its composed config (with the ``hydra`` node) and its outcome."""
    hydra_cfg = config.hydra
    variant = (config.get("variant") or {}).get("name")
    return {"job": int(hydra_cfg.job.num), "path": str(Path(str(hydra_cfg.runtime.output_dir)).absolute()),
            "variant": None if variant is None else str(variant), "seed": config.get("seed"),
            "overrides": [str(o) for o in hydra_cfg.overrides.task], "state": state, "reason": reason,
            "wandb": _wandb_group(config)}


def _is_multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    try:
        return config.hydra.mode == RunMode.MULTIRUN
    except Exception:
        return False


def write_job_record(config: DictConfig, state: str, reason: str | None = None) -> Path:
    record = job_record(config, state, reason)
    return write_json(jobs_dir(config) / f"{record['job']}.json", record)


def outcome_of(job_return) -> tuple[str, str | None]:
    """(state, reason) of a Hydra ``JobReturn``: the outcome ``train.py`` returned, or ``failed`` with the
    exception when the job raised."""
    from hydra.core.utils import JobStatus

    if job_return.status == JobStatus.FAILED:
        exc = job_return._return_value
        return FAILED, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    value = job_return._return_value if job_return.status == JobStatus.COMPLETED else None
    if isinstance(value, Mapping) and value.get("state") in STATES:
        return str(value["state"]), value.get("reason")
    return FAILED, "the job returned no outcome"


def read_job_records(folder: Path) -> list[dict]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json"), key=lambda p: natural_key(p.name)):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable job record (%s)", path, exc)
    return out


# --------------------------------------------------------------------------------------------
# the summary
# --------------------------------------------------------------------------------------------
def _name(path: str, sweep_dir: Path) -> str:
    try:
        return Path(path).relative_to(Path(sweep_dir).absolute()).as_posix()
    except ValueError:
        return str(path)


def summarise_jobs(sweep_dir: Path, records: list[dict]) -> dict:
    """``sweep_summary.json`` of the job records: ``counts``, the members by state, the same per variant
    (``by_variant``: each variant's ``counts`` and members) and the jobs with their reasons."""
    jobs = []
    for rec in records:
        state = rec.get("state")
        jobs.append(dict(rec, member=_name(rec["path"], sweep_dir),
                         state=INCOMPLETE if state not in STATES else state,
                         reason=rec.get("reason") or ("started, left no outcome (killed or out of time?)"
                                                      if state not in STATES else None)))

    def tally(subset: list[dict]) -> dict:
        out: dict = {"counts": {s: sum(j["state"] == s for j in subset) for s in STATES}}
        out.update({s: [j["member"] for j in subset if j["state"] == s] for s in STATES})
        return out

    summary = {"sweep": str(sweep_dir), **tally(jobs)}
    variants = sorted({str(j.get("variant")) for j in jobs}, key=natural_key)
    summary["by_variant"] = {v: tally([j for j in jobs if str(j.get("variant")) == v]) for v in variants}
    summary["jobs"] = [{k: j.get(k) for k in ("job", "member", "variant", "seed", "overrides", "state", "reason")}
                       for j in jobs]
    return summary


def not_completed(summary: Mapping) -> int:
    return sum(summary["counts"][s] for s in (FAILED, REFUSED, INCOMPLETE))


def summary_lines(summary: Mapping) -> list[str]:
    """The sweep summary as printed: the totals, one line per variant, one line per member that did not
    complete, with the overrides that set it apart from the other jobs and its reason."""
    c = summary["counts"]
    bad = not_completed(summary)
    parts = [f"{c[s]} {s}" for s in (FAILED, REFUSED, INCOMPLETE) if c[s]]
    lines = [f"sweep {summary['sweep']}: {c[COMPLETE]} complete, {bad} failed/refused"
             + (f" ({', '.join(parts)})" if parts else "")]
    for variant, tab in summary["by_variant"].items():
        vc = tab["counts"]
        lines.append(f"  {variant}: " + ", ".join(f"{vc[s]} {s}" for s in STATES if vc[s] or s == COMPLETE))
    common = set.intersection(*(set(j["overrides"]) for j in summary["jobs"])) if summary["jobs"] else set()
    for job in summary["jobs"]:
        if job["state"] != COMPLETE:
            own = " ".join(o for o in job["overrides"] if o not in common) or f"job {job['job']}"
            lines.append(f"  {job['state']:<10} {job['member']} ({own}): {job['reason']}")
    return lines


def _drawn(records: list[dict]) -> dict[str, list[RunDir]]:
    """The run folders of the overlay by variant: members that completed or started (refused ones are
    another member's folder; failed ones have no curve), each folder once."""
    groups: dict[str, list[RunDir]] = {}
    seen = set()
    for rec in records:
        if rec.get("state") in (FAILED, REFUSED) or rec["path"] in seen:
            continue
        run = RunDir(rec["path"])
        if run.metrics.is_file():
            seen.add(rec["path"])
            groups.setdefault(str(rec.get("variant")), []).append(run)
    return groups


def _log_to_wandb(sweep_dir: Path, records: list[dict], overlay: Path) -> None:
    """One W&B summary run per (project, group) among the jobs, with that group's overlay and counts."""
    from betenet.config import wandb_offline
    from betenet.training.plots import plot_sweep_overlay
    from betenet.training.wandb_records import log_sweep_group, wandb_disabled

    if wandb_disabled():
        return
    groups: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        if rec.get("wandb"):
            groups.setdefault((rec["wandb"]["project"], rec["wandb"]["group"]), []).append(rec)
    for (project, group), mine in groups.items():
        drawn = _drawn(mine)
        if not drawn:
            continue
        counts = {s: [_name(r["path"], sweep_dir) for r in mine if r.get("state") == s] for s in STATES}
        counts[INCOMPLETE] += [_name(r["path"], sweep_dir) for r in mine if r.get("state") not in STATES]
        with tempfile.TemporaryDirectory() as tmp:
            figure = overlay
            if len(groups) > 1:  # the sweep holds several groups: draw this group's members alone
                figure = plot_sweep_overlay(drawn, Path(tmp) / OVERLAY)
            try:
                log_sweep_group(project, group, sweep_dir, figure, counts, offline=wandb_offline())
            except Exception as exc:  # W&B trouble never fails a finished sweep
                log.warning("sweep %s: W&B summary of group %s not logged (%s)", sweep_dir, group, exc)


class SweepSummary(Callback):
    """Hydra callback (conf/config.yaml, ``hydra.callbacks.sweep_summary``); see the module docstring."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        folder = Path(str(config.hydra.sweep.dir)).absolute() / JOBS
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[JOBS_ENV] = str(folder)

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if _is_multirun(config):
            write_job_record(config, STARTED)

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if _is_multirun(config):
            write_job_record(config, *outcome_of(job_return))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from betenet.training.plots import plot_sweep_overlay

        sweep_dir = Path(str(config.hydra.sweep.dir))
        records = read_job_records(Path(os.environ.get(JOBS_ENV) or sweep_dir.absolute() / JOBS))
        if not sweep_dir.is_dir() and not records:
            return
        sweep_dir.mkdir(parents=True, exist_ok=True)
        summary = summarise_jobs(sweep_dir, records)
        write_json(sweep_dir / SUMMARY, summary, indent=2)
        drawn = _drawn(records)
        if drawn:
            plot_sweep_overlay(drawn, sweep_dir / OVERLAY)
            _log_to_wandb(sweep_dir, records, sweep_dir / OVERLAY)
        print("\n".join(summary_lines(summary)) + f"\n  summary: {sweep_dir / SUMMARY}", flush=True)
        if not_completed(summary):
            sys.exit(1)
