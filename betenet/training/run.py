"""Train one bootstrap member from a composed Hydra config (what train.py calls).

The numeric settings (seed, μ*, the data module's split and batch settings, label bounds) are
checked first: one out of range is an ``InputError`` naming it, before the run folder is touched.
The run folder (``paths.output_dir``, a :class:`~betenet.training.run_dir.RunDir`) is locked next;
a second training of the same folder stops there, before anything is written. The requested
member's fingerprint must match the folder's records: then an unfinished member resumes from
``checkpoints/last.ckpt`` and a finished one is reported complete; any other member in the folder
is an error naming the differing settings. A final or resume checkpoint that does not load (e.g.
truncated by a full disk) is moved aside with a warning: the member trains again, from the resume
checkpoint when that one loads, else from the start. Then: the data module, the network/LightningModule,
callbacks, loggers and trainer are instantiated from the config; the resolved config, the member's
bootstrap ids, the rejected entries and the member record are written; the final weights are tested.
At the end a closing summary (betenet/training/closing.py: the regime reached, the epoch kept and why,
out-of-bag and test MAE of λ, ω_log and Tc) is printed and kept in the member record.
"""

from __future__ import annotations

import logging
import traceback

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from betenet import validation
from betenet.config import register_resolvers
from betenet.runtime import FILE_ONLY, configure
from betenet.training.run_dir import MemberMismatch, RunDir, RunDirBusy, member_fingerprint
from betenet.training.tempering import TemperedTraining
from betenet.training.closing import closing_lines, closing_summary, read_metrics_rows
from betenet.training.wandb_records import finish as finish_wandb
from betenet.training.wandb_records import log_dataset, log_member_close, log_run_config, member_tags

log = logging.getLogger(__name__)

#: The callback config key of the rolling resume checkpoint (its folder and name come from RunDir).
RESUME_CHECKPOINT_KEY = "last_checkpoint"
#: What happens when a checkpoint does not load (it is moved aside: RunDir.set_aside).
UNREADABLE_CHECKPOINT = {RunDir.FINAL: "the member is not complete and trains again",
                         RunDir.LAST: "training starts again from the first epoch"}


def run_dir_of(cfg: DictConfig) -> RunDir:
    return RunDir(cfg.paths.output_dir)


def check_settings(cfg: DictConfig) -> None:
    """Refuse a seed, μ* or data setting out of range (:mod:`betenet.validation`) before the run folder
    is touched: ``InputError`` naming it as on the command line (``seed``, ``data.test_fraction``)."""
    from betenet.data.datamodule import checked_settings

    data = cfg.get("data") or {}
    checked_settings(cfg.get("seed"), data.get("split_seed", 0), data.get("test_fraction", 0.2),
                     data.get("batch_size"), data.get("label_bounds"), prefix="data.")
    if "subsample_fraction" in data:
        validation.open_fraction(data.subsample_fraction, "data.subsample_fraction")
    if "mu_star" in (cfg.get("model") or {}):
        validation.mu_star(cfg.model.mu_star, "model.mu_star")


def set_aside_unreadable(run: RunDir) -> None:
    """Move the final and resume checkpoints that exist but do not load out of the way, saying what
    happens instead (:data:`UNREADABLE_CHECKPOINT`) in the log and on stdout."""
    for which, then in UNREADABLE_CHECKPOINT.items():
        path = run.checkpoint(which)
        problem = run.checkpoint_problem(which) if path.is_file() else None
        if problem:
            note = f"{path} does not load ({problem}): moved to {run.set_aside(which).name}; {then}"
            log.warning(note)
            print(note)


def _instantiate_callbacks(cfg: DictConfig, run: RunDir) -> list:
    group = cfg.get("callbacks") or {}
    out = []
    for key, c in group.items():
        if c is None or "_target_" not in c:
            continue
        extra = dict(dirpath=str(run.checkpoint_dir), filename=run.LAST) if key == RESUME_CHECKPOINT_KEY else {}
        out.append(hydra.utils.instantiate(c, **extra))
    return out


def _instantiate_loggers(cfg: DictConfig, run: RunDir, wandb_id: str) -> list:
    """The configured loggers; a W&B logger resumes the member's own run id (kept in member.json) and,
    unless the config names its own, gets the member's tags (variant, experiment, features)."""
    out = []
    for c in (cfg.get("logger") or {}).values():
        if c is None or "_target_" not in c:
            continue
        extra = {}
        if str(c._target_).endswith("WandbLogger"):
            extra = dict(id=wandb_id, resume="allow")
            if c.get("tags") is None:
                extra["tags"] = member_tags(cfg)
        out.append(hydra.utils.instantiate(c, **extra))
    return out


def _train_elements(datamodule) -> list[str]:
    from betenet.data.datamodule import graph_elements

    return sorted(set().union(*(graph_elements(datamodule.built.graphs[i]) for i in datamodule.member.train_ids)))


def _train_locked(cfg: DictConfig, run: RunDir) -> dict:
    fingerprint = member_fingerprint(cfg)
    run.check_member(fingerprint)  # raises MemberMismatch before anything is written
    set_aside_unreadable(run)
    if run.is_complete():
        log.info("member already complete: %s", run.final)
        print(f"member already complete; outputs in {run.path}")
        result = run.read_member_result()
        if result:  # what it reached, as printed when it finished
            print("\n".join(closing_lines(result, _member_name(cfg), run.path)[1:-1]))
        return (run.read_regimes() or {}) | {"reused": True}

    run.write_hydra_snapshot(cfg)
    runtime = cfg.get("runtime") or {}
    configure(threads=runtime.get("threads"), keep_memory=bool(runtime.get("keep_freed_memory", True)))  # logs it
    pl.seed_everything(int(cfg.seed), workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    run.write_rejected(datamodule.built.rejected)
    elements = _train_elements(datamodule)
    wandb_id = run.wandb_run_id()
    run.write_member(fingerprint, elements, wandb_id)
    with open_dict(cfg):
        if cfg.model.net.get("num_neighbors") is None:
            cfg.model.net.num_neighbors = datamodule.num_neighbors
        # where the node PhDOS came from (dataset / ML potential + recipe), read back at predict time
        cfg.site_dos_provenance = getattr(datamodule, "site_dos_provenance", None)
    run.write_config(cfg)
    member, statistics = datamodule.member, datamodule.statistics()
    run.write_bootstrap({
        "seed": int(cfg.seed), "mode": datamodule.bootstrap,
        "train_ids": list(member.train_ids), "train_weights": [float(w) for w in member.weights],
        "val_ids": list(member.val_ids), "test_ids": datamodule.split_ids["test"],
        "train_elements": elements, "statistics": statistics})

    model = hydra.utils.instantiate(cfg.model)
    callbacks = _instantiate_callbacks(cfg, run)
    tempering = next((cb for cb in callbacks if isinstance(cb, TemperedTraining)), None)
    if tempering is not None:
        tempering.member_info = {"member": fingerprint, "train_elements": elements}
    loggers = _instantiate_loggers(cfg, run, wandb_id)
    try:
        log_run_config(loggers, OmegaConf.to_container(cfg, resolve=True))
        log_dataset(loggers, statistics)
        summary = _fit(cfg, run, datamodule, model, callbacks, tempering, loggers)
    except BaseException:
        finish_wandb(loggers, exit_code=1)
        raise
    finish_wandb(loggers)
    return summary


def _fit(cfg: DictConfig, run: RunDir, datamodule, model, callbacks: list, tempering, loggers: list) -> dict:
    """Fit (or resume), write the final outputs if a resumed run had nothing left, test; the summary."""
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    ckpt_path = str(run.last) if run.last.exists() else None
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
        print(f"resuming from {ckpt_path}")
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    if not run.is_complete() and tempering is not None and tempering.history:
        tempering.finish(trainer, model)  # killed after its last epoch's checkpoint: nothing left to run
    summary = run.read_regimes()
    if summary is None:
        raise RuntimeError(f"training ended without {run.REGIMES} (is the tempering callback configured?)")
    test_ids = datamodule.split_ids.get("test") or []
    test_note = None
    if not cfg.get("test_after_fit", True):
        test_note = "not run (test_after_fit=false)"
    elif not test_ids:
        test_note = "not run: the data has no test split"
    else:
        tested = trainer.test(model, datamodule=datamodule, verbose=False)
        summary["test"] = tested[0] if tested else {}
        run.write_regimes(summary)
    result = closing_summary(summary, read_metrics_rows(run.metrics), n_out_of_bag=len(datamodule.member.val_ids),
                             n_test=len(test_ids), test_note=test_note)
    run.write_member_result(result)
    log_member_close(loggers, result, [run.final, run.file(run.CONFIG), run.file(run.REGIMES),
                                       run.file(run.MEMBER)])
    run.clear_failed()
    lines = closing_lines(result, _member_name(cfg), run.path)
    log.info("closing summary\n%s", "\n".join(lines), extra=FILE_ONLY)
    print("\n".join(lines), flush=True)
    return summary


def _member_name(cfg: DictConfig) -> str:
    return f"member {cfg.seed} ({cfg.variant.name})"


def train_member(cfg: DictConfig) -> dict:
    """Train (or resume) one member in its locked run folder; returns a small summary dict."""
    register_resolvers()
    check_settings(cfg)
    run = run_dir_of(cfg)
    with run.lock():
        return _train_locked(cfg, run)


#: What became of a member of a sweep (:func:`train_member_safely`; counted by betenet/training/sweep.py).
COMPLETE, FAILED, REFUSED = "complete", "failed", "refused"


def train_member_safely(cfg: DictConfig, in_sweep: bool) -> dict:
    """In a sweep a failing member is recorded in FAILED.txt and the sweep goes on; alone it raises.

    A folder that is busy or holds another member is never written to: in a sweep that member is
    refused (reported and skipped). A setting out of range stops the sweep (it is the command's, see
    :func:`check_settings`). Returns the member's outcome, which the sweep counts:
    ``{"state": complete|failed|refused, "reason": why (None when complete), "summary": regimes record}``."""
    register_resolvers()
    check_settings(cfg)
    run = run_dir_of(cfg)
    try:
        with run.lock():
            try:
                return {"state": COMPLETE, "reason": None, "summary": _train_locked(cfg, run)}
            except MemberMismatch:
                raise
            except Exception:
                if not in_sweep:
                    raise
                run.write_failed(traceback.format_exc())
                log.error("member seed=%s failed; see %s", cfg.seed, run.file(run.FAILED))
                return {"state": FAILED, "reason": run.failure(), "summary": None}
    except (RunDirBusy, MemberMismatch) as err:
        if not in_sweep:
            raise
        log.error("member seed=%s not trained: %s", cfg.seed, err)
        return {"state": REFUSED, "reason": str(err), "summary": None}

