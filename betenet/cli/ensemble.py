"""The ``betenet predict | evaluate | screen | landscape`` subcommands: argument parsing and thin
``cmd_*`` functions over :mod:`betenet.inference` (members, inputs, prediction tables) and
:mod:`betenet.evaluation` (reports, screening, landscapes).

* ``predict``: ensemble prediction for structure files (CIF / POSCAR / extxyz; files, folders,
  globs, multi-structure extxyz, ASE databases, list files) → a CSV of λ, ω_log, ω_2, Allen–Dynes T_c
  (± the members' spread; Eliashberg T_c with ``--eliashberg``) with a ``status`` and ``warnings`` per
  input, and a JSON of the mean a2F ± std (:func:`betenet.inference.predict.predict_files`), ``--chunk-size``
  inputs at a time; a run stopped half way goes on when started again. A bad input gets its row and
  reason; the others go on. Exit status 1 when no input could be predicted. Prints a short table of the
  predictions before its summary (not with ``--json``); ``--out -`` prints the CSV instead, and only it.
* ``evaluate``: Table I, parity plots, best/worst spectra, per-element error and metrics against
  ensemble size on the test split of the ensemble's data (or ``--data``); ``--model baseline``
  evaluates the linear baseline fitted on the rest of that data.
* ``screen``: precision–recall screening for T_c^ref ≥ ``--threshold`` (two-stage with
  ``--ensemble-stage2``); on a split without T_c it ranks its structures by predicted T_c ± spread; on
  unlabelled INPUTS it runs the funnel, streaming and resumable, on this machine or a cluster
  (:func:`betenet.inference.screen.screen_inputs`: stage 1 ranks every input, stage 2 computes the phonons of
  the top ``--stage2-fraction`` and ranks them again).
* ``calibrate``: one scale per property for the ensemble's spread, fitted on the out-of-bag
  predictions of its training pool (:mod:`betenet.inference.calibration`), written to
  ``calibration.json`` in the ensemble folder, where ``predict``, ``evaluate`` and ``screen`` read it.
* ``landscape``: loss surfaces around a member's classical, critical and modern checkpoints.
* ``check-elements``: λ of elemental metals against their published values (:mod:`betenet.evaluation.elemental`).

Each writes into ``--out`` and returns a flat summary the CLI prints (or ``--json``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from betenet.errors import InputError
from betenet.evaluation.screening import DEFAULT_THRESHOLD_K
from betenet.training.run_dir import REGIME_CHECKPOINTS

__all__ = ["add_ensemble_commands", "cmd_predict", "cmd_evaluate", "cmd_check_elements", "cmd_calibrate", "cmd_screen",
           "cmd_landscape"]

# --------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------
def cmd_predict(args: argparse.Namespace) -> dict:
    """INPUTS → CSV + spectra JSON (``betenet.inference.predict.predict_files``), a short table of the
    predictions on stdout (not with ``--json``, nor with ``--out -``, whose CSV is all stdout gets);
    the summary's ``exit_status`` is 1 when no input could be predicted."""
    from betenet.files import STDOUT
    from betenet.inference import load_ensemble
    from betenet.inference.predict import predict_files, preview

    if args.out == STDOUT and args.json:
        raise InputError("--out -", "the CSV goes to stdout, where --json would print too: drop one of them")
    ensemble = load_ensemble(args.ensemble, args.checkpoint)
    done = predict_files(ensemble, args.inputs, args.out, labels=args.labels, mu_star=args.mu_star,
                         eliashberg=args.eliashberg, batch_size=args.batch_size, device=args.device,
                         chunk_size=args.chunk_size, progress_every=args.progress_every)
    if done.csv is not None and not args.json:
        print(preview(done.table, total=done.summary["inputs"]) + "\n")
    return done.summary


# --------------------------------------------------------------------------------------------
# evaluate / screen: labelled data
# --------------------------------------------------------------------------------------------
def _datamodule(args, ensemble):
    if ensemble is not None:
        return ensemble.datamodule(args.data, args.data_source, args.cache_dir)
    from betenet.data.datamodule import BetenetDataModule
    from betenet.inference import detect_source

    from betenet.data.sources.registry import get_source

    if args.data is None and (args.data_source is None or get_source(args.data_source).needs_root):
        raise InputError("--data", "give --ensemble (its training data is used) or --data DATASET_FOLDER")
    source = args.data_source or detect_source(args.data)
    dm = BetenetDataModule(source=source, root=None if args.data is None else str(args.data),
                           cache_dir=args.cache_dir)
    dm.setup("test")
    return dm


def _load(paths, checkpoint):
    from betenet.inference import load_ensemble

    return load_ensemble(paths, checkpoint) if paths else None


def _split_predictions(args, ensemble, dm):
    from betenet.evaluation.predictions import baseline_split_predictions, ensemble_split_predictions
    from betenet.physics.units import MU_STAR_DEFAULT

    if args.model == "baseline":
        mu = args.mu_star if args.mu_star is not None else (ensemble.mu_star if ensemble else MU_STAR_DEFAULT)
        return baseline_split_predictions(dm, args.split, mu)
    if ensemble is None:
        raise InputError("--ensemble", "required unless --model baseline")
    return ensemble_split_predictions(ensemble, dm, args.split, args.mu_star, progress=True, device=args.device,
                                      batch_size=args.batch_size)


def held_out_check(args, ensemble, dm) -> dict:
    """Refuse a ``--split test`` or ``val`` score that holds entries any member trained on (a changed dataset,
    or ``--data`` with its own splits, can put them there), unless ``--include-trained``; ``train`` and ``all``
    are scored as asked. Returns what goes into the result: how many scored entries the members trained on."""
    if ensemble is None or args.model != "ensemble":
        return {}
    trained, unknown = ensemble.trained_ids()
    key = "predict" if args.split == "all" else args.split
    scored = [str(i) for i in dm.split_ids.get(key, [])]
    overlap = [i for i in scored if i in trained]
    if overlap and args.split in ("test", "val") and not args.include_trained:
        raise InputError(f"--split {args.split}", f"{len(overlap)} of its {len(scored)} entries are in the members' "
                         f"training set (e.g. {', '.join(overlap[:3])}): not a held-out score; --include-trained "
                         "scores them anyway and reports the count")
    out = {"entries_trained_on": len(overlap)}
    if unknown:
        out["members_without_bootstrap_record"] = len(unknown)
    return out


def cmd_evaluate(args: argparse.Namespace) -> dict:
    from betenet.evaluation.reports import evaluation_report

    ensemble = _load(args.ensemble, args.checkpoint)
    dm = _datamodule(args, ensemble)
    held_out = held_out_check(args, ensemble, dm)
    p = _split_predictions(args, ensemble, dm)
    compare = []
    if "gbm" in (args.compare or ()):
        from betenet.evaluation.predictions import gbm_split_predictions

        compare.append(gbm_split_predictions(dm, args.split, p.mu_star))
    summary = evaluation_report(p, args.out, k=args.top_k, sizes=args.sizes, n_draws=args.draws, seed=args.seed,
                                spectra_ids=args.spectra, compare=compare)
    result = {"out": str(args.out), "model": p.model, "split": p.split, "n": len(p), **held_out}
    if ensemble is not None and args.model == "ensemble":
        result["members"] = len(ensemble)
        result["skipped_members"] = len(ensemble.skipped)
    for k, m in summary["metrics"].items():
        if m["n"]:
            for stat in ("r2", "mae", "rmse"):
                result[f"{stat}_{k}"] = m[stat]
    for k, m in (summary.get("reported_metrics") or {}).items():
        for stat in ("r2", "mae", "rmse"):
            result[f"{stat}_{k}_reported"] = m[stat]
    median = (summary["baselines"]["median predictor"].get("reported" if not p.has_reference else "reference")
              or {}).get("tc_K")
    if median:
        result["median_predictor_mae_tc_K"], result["median_predictor_rmse_tc_K"] = median["mae"], median["rmse"]
    tc_spread = (summary.get("uncertainty") or {}).get("tc_K") or {}
    for key in ("fraction_within_2std", "fraction_within_2std_uncalibrated"):
        if key in tc_spread:
            result[f"{key}_tc_K"] = tc_spread[key]
    top = ((summary.get("top_end") or {}).get("models") or {}).get(p.model)
    if top:
        result["n_tc_at_least_5K"] = top["high"]["n"]
        result["mae_tc_K_at_least_5K"], result["rmse_tc_K_at_least_5K"] = top["high"]["mae"], top["high"]["rmse"]
        result["spearman_tc_K"] = top["spearman"]
        for thr, c in top["classes"].items():
            for stat in ("precision", "recall", "average_precision"):
                result[f"{stat}_tc_{thr}K"] = c[stat]
    physics = summary["physics"]
    result["lambda_median"], result["omega_log_K_median"] = physics["lambda"][2], physics["omega_log_K"][2]
    result["fraction_flagged_implausible"] = physics["fraction_flagged_implausible"]
    return result


def cmd_check_elements(args: argparse.Namespace) -> dict:
    """The ensemble's λ of elemental metals against their published λ (:mod:`betenet.evaluation.elemental`):
    the table on the console (or JSON), ``elemental_lambda.json`` and ``.md`` in ``--out``."""
    from betenet.evaluation.elemental import WEAK_LIMIT, check_ensemble, markdown
    from betenet.files import write_json

    ensemble = _load(args.ensemble, args.checkpoint)
    result = check_ensemble(ensemble, mu_star=args.mu_star)
    text = markdown(result)
    if args.out:
        out = Path(args.out)
        write_json(out / "elemental_lambda.json", {"ensemble": ensemble.label, **result}, indent=2, nan_as_null=True)
        (out / "elemental_lambda.md").write_text(text)
    if not args.json:
        print(text)
    summary = {"out": args.out, "elements": result["n"], "lambda_mae": result["lambda_mae"],
               "lambda_rmse": result["lambda_rmse"], "spearman_lambda": result["spearman"]}
    summary.update({f"lambda_{el}": value for el, value in result["weak"].items()})
    summary[f"weak_metals_below_{WEAK_LIMIT}"] = result["weak_all_below_0.3"]
    return summary


def cmd_calibrate(args: argparse.Namespace) -> dict:
    """Fit the spread's scales on the out-of-bag predictions of the ensemble's training pool (its
    own data, or ``--data``) and write ``calibration.json`` into the ensemble folder."""
    from betenet.inference import load_ensemble
    from betenet.inference.calibration import calibrate_ensemble, require_members, write_calibration

    if len(args.ensemble) != 1 or not Path(args.ensemble[0]).is_dir():
        raise InputError("--ensemble", "calibrate takes one ensemble folder (the folder holding the member run "
                                       "folders)")
    folder = Path(args.ensemble[0])
    ensemble = load_ensemble(folder, args.checkpoint, calibrated=False)
    require_members(ensemble)
    calibration = calibrate_ensemble(ensemble, _datamodule(args, ensemble), args.mu_star, batch_size=args.batch_size,
                                     device=args.device, progress=True)
    path = write_calibration(folder, calibration)
    info = calibration.info
    result = {"out": str(path), "members": len(ensemble), "pool_entries": info["pool_entries"],
              "entries_out_of_bag_for_2_or_more": info["entries_out_of_bag_for_2_or_more"],
              "mean_out_of_bag_members": info["mean_out_of_bag_members"]}
    scales, intervals = calibration.scales(len(ensemble)), calibration.scale_intervals(len(ensemble))
    for key, fit in calibration.fits.items():
        result[f"scale_{key}"] = scales.get(key, f"not fitted ({fit['n']} usable entries)")
        if key in intervals:
            result[f"scale_{key}_interval"] = "{:.3g} to {:.3g}".format(*intervals[key])
        result[f"oob_within_2std_{key}"] = fit["within_2std_before"]
        result[f"oob_within_2std_{key}_calibrated"] = fit["within_2std_after"]
    return result


def _top(ranking) -> dict:
    """The summary's ``top``, ``top_tc_allen_dynes_K`` and its ``_std`` (None without a spread)."""
    from betenet.physics.properties import TC_ALLEN_DYNES

    first = ranking[0]
    return {"top": first["id"], f"top_{TC_ALLEN_DYNES}": first[TC_ALLEN_DYNES],
            f"top_{TC_ALLEN_DYNES}_std": first[f"{TC_ALLEN_DYNES}_std"]}


def _screen_inputs(args, ensemble) -> dict:
    """Unlabelled INPUTS: stage 1, and with ``--ensemble-stage2`` the funnel (:mod:`betenet.inference.screen`)."""
    from betenet.inference.screen import ScreenOptions, screen_inputs

    options = ScreenOptions(labels=args.labels, mu_star=args.mu_star, batch_size=args.batch_size, device=args.device,
                            chunk_size=args.chunk_size, progress_every=args.progress_every,
                            stage2_fraction=args.stage2_fraction, stage1_threshold=args.stage1_threshold,
                            potential=args.potential, max_atoms=args.max_atoms, jobs=args.jobs, threads=args.threads,
                            phonons_cache=args.phonons_cache, cluster=args.cluster, cluster_chunk=args.cluster_chunk,
                            cluster_options=tuple(args.cluster_option))
    return screen_inputs(ensemble, args.inputs, args.out, options, _load(args.ensemble_stage2, args.checkpoint),
                         ensemble_spec=(args.ensemble, args.checkpoint))


def cmd_screen(args: argparse.Namespace) -> dict:
    from betenet.evaluation.reports import write_json
    from betenet.evaluation.screening_report import screening_report, write_ranking

    if args.model == "baseline" and (args.inputs or args.ensemble_stage2):
        raise InputError("--model baseline", "screens a labelled split only (no INPUTS, no --ensemble-stage2)")
    if not args.inputs:
        for flag, value in (("--cluster", args.cluster), ("--stage2-fraction", args.stage2_fraction)):
            if value is not None:
                raise InputError(flag, "applies to ranking unlabelled INPUTS only")
    ensemble = _load(args.ensemble, args.checkpoint)
    if args.inputs:
        if ensemble is None:
            raise InputError("--ensemble", "required to rank INPUTS")
        return _screen_inputs(args, ensemble)
    dm = _datamodule(args, ensemble)
    held_out_check(args, ensemble, dm)
    p1 = _split_predictions(args, ensemble, dm)
    out = Path(args.out)
    if not np.isfinite(p1.truth(args.truth)[1]["tc_K"]).any():
        # No reference T_c: rank the split's structures instead.
        ranking = write_ranking(out / "candidates.csv", p1.ids, p1.formulas, p1.pred["tc_K"],
                                None if p1.std is None else p1.std["tc_K"])
        write_json(out / "candidates.json", {"model": p1.model, "split": p1.split, "ranking": ranking})
        return {"mode": "ranking", "out": str(out), "ranked": len(ranking), **_top(ranking)}
    p2 = None
    if args.ensemble_stage2:
        stage2 = _load(args.ensemble_stage2, args.checkpoint)
        args2 = argparse.Namespace(**{**vars(args), "model": "ensemble"})
        p2 = _split_predictions(args2, stage2, _datamodule(args2, stage2))
    result = screening_report(p1, out, args.threshold, args.precision, args.recall, args.stage1_precision, stage2=p2,
                              truth=args.truth)
    s1 = result["models"]["stage1"]
    flat = {"mode": "labelled", "out": str(out), "model": s1["model"], "n": s1["n"], "n_positive": s1["n_positive"],
            "average_precision": s1["average_precision"], "random_ap": s1["random_ap"],
            "cheap_stage_decision_K": None if s1["cheap_stage"] is None else s1["cheap_stage"]["decision_K"],
            "operating_decision_K": None if s1["operating"] is None else s1["operating"]["decision_K"]}
    if p2 is not None:
        s2 = result["models"]["stage2"]
        flat.update(stage2_model=s2["model"], stage2_average_precision=s2["average_precision"])
        flow = result["two_stage"]
        flat["two_stage_ap"] = flow.get("ap")
        flat["two_stage_fraction_to_stage2"] = flow.get("fraction_to_stage2")
    return flat


# --------------------------------------------------------------------------------------------
# landscape
# --------------------------------------------------------------------------------------------
def cmd_landscape(args: argparse.Namespace) -> dict:
    from betenet.evaluation.landscape import landscape_figure, member_landscapes
    from betenet.evaluation.reports import write_json

    result = member_landscapes(args.run, args.regimes, args.steps, args.span, args.seed, args.cache_dir,
                               progress=True)
    out = Path(args.out)
    write_json(out / "landscape.json", result)
    figure = landscape_figure(result, out / "landscape.png")
    flat = {"out": str(out), "figure": str(figure), "regimes": ", ".join(result["landscapes"]),
            "missing": "; ".join(f"{k}: {v}" for k, v in result["missing"].items()) or "none"}
    for regime, rec in result["landscapes"].items():
        flat[f"{regime}_loss_at_origin"] = rec["loss_at_origin"]
        flat[f"{regime}_minimum_distance"] = rec["minimum"]["distance"]
    return flat


# --------------------------------------------------------------------------------------------
# argparse
# --------------------------------------------------------------------------------------------
def _unit_interval(text: str) -> float:
    x = float(text)
    if not 0.0 < x <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return x


def _ensemble_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--ensemble", action="append", required=required, metavar="DIR",
                   help="sweep or run directory, a member checkpoint, or the name of a shipped ensemble "
                        "(jarvis-tc: README, model card) (repeat to combine several)")
    from betenet.training.run_dir import RunDir

    p.add_argument("--checkpoint", default=RunDir.FINAL,
                   help="which checkpoint of each run: final (default), classical, critical, modern or a file name")
    p.add_argument("--mu-star", type=float, default=None,
                   help="Coulomb pseudopotential of every Allen-Dynes Tc, predicted and reference, in [0, 0.4] "
                        "(default: the members' own, 0.10); reported values stay as the dataset gives them")
    p.add_argument("--device", default="cpu", help="torch device for prediction (cpu, cuda, ...)")
    p.add_argument("--batch-size", type=int, default=64, help="structures per forward pass (at least 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's choice; 1 when other jobs share the machine)")


def _data_args(p: argparse.ArgumentParser, split_and_model: bool = True) -> None:
    from betenet.data.sources import source_names

    p.add_argument("--data", default=None, metavar="DATASET",
                   help="evaluate on this dataset folder (release or directory format) instead of the "
                        "ensemble's training data")
    p.add_argument("--data-source", choices=source_names(), default=None,
                   help="format of --data (default: detected from the folder: bee_net or release if it holds "
                        "database.json, else directory)")
    p.add_argument("--cache-dir", default=None, help="graph/demo cache (default: the runs' own)")
    if not split_and_model:
        return
    p.add_argument("--split", choices=["test", "train", "val", "all"], default="test",
                   help="which split of the data (default test; all = every entry)")
    p.add_argument("--model", choices=["ensemble", "baseline"], default="ensemble",
                   help="baseline: the linear eDOS/PhDOS model fitted on the rest of the data (needs eDOS)")
    p.add_argument("--include-trained", action="store_true",
                   help="score a test or val split even when some of its entries are in the members' training set "
                        "(refused otherwise; the count is reported)")


def _funnel_args(p: argparse.ArgumentParser) -> None:
    """``screen``'s options for unlabelled INPUTS: streaming, the cut to stage 2, its phonons, the cluster."""
    from betenet.inference.funnel import DEFAULT_STAGE2_FRACTION
    from betenet.inference.screen_cluster import DEFAULT_TASK_INPUTS
    from betenet.inference.stream import DEFAULT_CHUNK_SIZE
    from betenet.phonons.potentials import POTENTIALS
    from betenet.phonons.settings import PhononSettings

    p.add_argument("--stage2-fraction", type=_unit_interval, default=None, metavar="F",
                   help=f"INPUTS: share of stage 1's ranking sent to stage 2 (default {DEFAULT_STAGE2_FRACTION:g}; "
                        "with --stage1-threshold alone, every candidate at or above it)")
    p.add_argument("--stage1-threshold", type=float, default=None,
                   help="INPUTS: stage-1 Tc (K) a candidate also needs to reach stage 2")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                   help="INPUTS read, predicted and appended together (memory does not grow with the pool); a run "
                        "stopped half way goes on when started again")
    p.add_argument("--progress-every", type=int, default=None, metavar="N",
                   help="when stderr is not a terminal: a progress line every N inputs (default: one per chunk)")
    p.add_argument("--potential", choices=sorted(POTENTIALS), default=None,
                   help="stage-2 phonons: ML potential (default: the stage-2 ensemble's training recipe when it was "
                        "an ML potential's, else sevenn)")
    p.add_argument("--max-atoms", type=int, default=None,
                   help=f"stage-2 phonons: cells with more atoms are dropped with the reason "
                        f"(default {PhononSettings().max_atoms})")
    p.add_argument("--jobs", type=int, default=1,
                   help="stage-2 phonons: worker processes (each loads the potential once); with --cluster local: "
                        "array tasks")
    p.add_argument("--phonons-cache", default=None, metavar="DIR",
                   help="stage-2 PhDOS cache (default $BETENET_CACHE/phonons or ~/.cache/betenet/phonons)")
    p.add_argument("--cluster", choices=["local", "slurm"], default=None,
                   help="INPUTS: run stage 1 (chunks of the pool) and the stage-2 phonons as submitit job arrays: "
                        "local (--jobs tasks on this machine) or slurm (resources from conf/cluster); this "
                        "process waits and merges")
    p.add_argument("--cluster-chunk", type=int, default=None, metavar="N",
                   help=f"--cluster slurm: stage-1 inputs per array task (default {DEFAULT_TASK_INPUTS})")
    p.add_argument("--cluster-option", action="append", default=[], metavar="KEY=VALUE",
                   help="override a conf/cluster setting (partition, cpus_per_task, mem_gb, timeout_min, "
                        "array_parallelism, gpus_per_node); repeat for several")


def add_ensemble_commands(sub) -> None:
    """Register predict, evaluate, check-elements, calibrate, screen and landscape on the ``betenet`` subparsers."""
    p = sub.add_parser("predict", help="ensemble prediction of a2F, lambda, omega_log, omega_2, Tc for structures")
    _ensemble_args(p, required=True)
    p.add_argument("inputs", nargs="+", metavar="INPUTS",
                   help="structure files, folders or glob patterns; extxyz files with many structures (id "
                        "<stem>:<k>), ASE databases (.db, id <stem>:<row id>), list files (.txt/.list: one path "
                        "or glob per line)")
    p.add_argument("--out", required=True, help="CSV to write (not a folder, not an input); the a2F spectra go to "
                                                "the same name with .json. '-': the CSV to stdout, no spectra. "
                                                "Work in progress is kept in <out>.partial/: the same command "
                                                "after an interruption carries it over")
    from betenet.inference.stream import DEFAULT_CHUNK_SIZE

    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                   help="inputs read, predicted and appended together (memory does not grow with the pool)")
    p.add_argument("--progress-every", type=int, default=None, metavar="N",
                   help="when stderr is not a terminal: a progress line every N inputs (default: one per chunk); "
                        "on a terminal a bar")
    p.add_argument("--labels", default=None, help="labels.csv/.json holding the site PhDOS (CPD/FPD ensembles)")
    p.add_argument("--eliashberg", action="store_true", help="also the isotropic Eliashberg Tc (slow)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="Table I, parity plots, best/worst spectra on a labelled split")
    _ensemble_args(p, required=False)
    _data_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--top-k", type=int, default=6, help="best and worst spectra to draw")
    p.add_argument("--compare", nargs="+", choices=["gbm"], default=None,
                   help="baselines scored beside the model in Table I: gbm = gradient boosting of lambda on "
                        "composition and (ML-potential) phonon-DOS features, Tc through Allen-Dynes")
    p.add_argument("--spectra", nargs="+", default=None, metavar="ID",
                   help="materials whose predicted a2F to draw in spectra.png (default: the highest-Tc ones)")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="ensemble sizes to score (default: a ladder)")
    p.add_argument("--draws", type=int, default=10, help="random member subsets per ensemble size")
    p.add_argument("--seed", type=int, default=0, help="seed of the member subsets")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="fit the ensemble spread's scale per property on out-of-bag predictions "
                                         "(writes calibration.json into the ensemble folder)")
    _ensemble_args(p, required=True)
    _data_args(p, split_and_model=False)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("check-elements", help="λ of elemental metals (Na, K, Cu, Ag, Au, Al, Pb, Nb, ...) against "
                                              "their published values (betenet/evaluation/elemental_lambda.csv)")
    _ensemble_args(p, required=True)
    p.add_argument("--out", default=None, help="folder for elemental_lambda.json and elemental_lambda.md")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_check_elements)

    p = sub.add_parser("screen", help="precision-recall screening for high Tc, or ranking of unlabeled structures")
    _ensemble_args(p, required=False)
    _data_args(p)
    p.add_argument("inputs", nargs="*", metavar="INPUTS", help="unlabeled structures to rank (files, folders, globs)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--truth", choices=["auto", "reference", "reported"], default="auto",
                   help="reference Tc: of the binned reference a2F (reference), the dataset's reported value "
                        "(reported), or auto (reference when the data has a2F, else reported)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD_K,
                   help="a material is a positive when its reference Tc >= this (K; default 5)")
    point = p.add_mutually_exclusive_group()
    point.add_argument("--precision", type=_unit_interval, default=None,
                       help="operating point: largest recall with at least this precision (default 0.8)")
    point.add_argument("--recall", type=_unit_interval, default=None,
                       help="operating point: largest precision with at least this recall")
    p.add_argument("--stage1-precision", type=_unit_interval, default=1.0,
                   help="precision the cheap first stage must reach (default 1.0)")
    p.add_argument("--ensemble-stage2", action="append", default=None, metavar="DIR",
                   help="second-stage ensemble (e.g. CPD) for the two-stage flow; on INPUTS the funnel: the top of "
                        "stage 1's ranking gets its phonons computed (this ensemble's PhDOS kind) and is ranked "
                        "again by it")
    _funnel_args(p)
    p.add_argument("--labels", default=None, help="labels.csv/.json with the site PhDOS of INPUTS (CPD/FPD)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_screen)

    p = sub.add_parser("landscape", help="loss landscapes of a member's classical, critical, modern checkpoints")
    p.add_argument("--run", required=True, help="a member's run directory")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=int, default=21, help="grid points per direction")
    p.add_argument("--span", type=float, default=1.0,
                   help="grid half-width in units of the filter-normalised directions")
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions")
    p.add_argument("--regimes", nargs="+", default=list(REGIME_CHECKPOINTS), choices=REGIME_CHECKPOINTS,
                   help="which of the member's checkpoints to draw")
    p.add_argument("--cache-dir", default=None, help="graph/demo cache (default: the run's own)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_landscape)
