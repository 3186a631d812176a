"""Inputs of a prediction (structure files from :func:`betenet.data.structures.gather_inputs`, or
in-memory structures) → one row each, with the graph the members read, the reason when there is
none, and the warnings that qualify it.

A row's ``warnings`` (empty when clean) name what makes its prediction less trustworthy than the
spread suggests:

* elements no member trained on (``unseen elements: H, S``), or that only some members trained on
  (``elements seen by 2 of 5 members: Cf``): the network has never been fitted to them, and
  members agreeing says nothing about being right;
* atoms without a neighbour within the members' cutoff: they keep only their self-edge (as the
  release did for e.g. elemental Cs at 4 Å), so the network sees each as a free atom;
* members trained on the synthetic demo data (:data:`SYNTHETIC_WARNING`): their numbers show the
  pipeline working, they say nothing about a real material.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from betenet.errors import InputError
from betenet.training.run_dir import RunDir

__all__ = ["InputRow", "SYNTHETIC_WARNING", "build_rows"]

#: The first warning of every row an ensemble trained on the synthetic demo set predicts.
SYNTHETIC_WARNING = "members trained on synthetic demo data (not DFT): not a prediction for a real material"


def trained_on_demo(ensemble) -> bool:
    """Whether any member's data was the generated demo set (``data.source: demo`` in its config)."""
    configs = [m.config for m in getattr(ensemble, "members", [])] or [ensemble.config]
    return any(((c or {}).get("data") or {}).get("source") == "demo" for c in configs)


@dataclass
class InputRow:
    """One input of ``predict``/``screen``: its graph when usable, else the reason in ``status``;
    ``warnings`` qualify a usable one (module docstring)."""

    id: str
    path: Path | None
    formula: str = ""
    graph: object = None
    status: str = "ok"
    warnings: list[str] = field(default_factory=list)


def _element_warnings(elements: set[str], coverage: dict[str, int], n_known: int) -> list[str]:
    if not n_known:
        return []
    unseen = sorted(e for e in elements if coverage.get(e, 0) == 0)
    partly = sorted(e for e in elements if 0 < coverage.get(e, 0) < n_known)
    out = []
    if unseen:
        out.append(f"unseen elements: {', '.join(unseen)} (in no member's training set)")
    for e in partly:
        out.append(f"element {e} seen by only {coverage[e]} of {n_known} members")
    return out


def _isolated_warning(structure, graph, r_max: float) -> list[str]:
    from betenet.data.graphs import isolated_atoms

    lonely = isolated_atoms(graph)
    if not lonely:
        return []
    shown = ", ".join(f"{k} ({structure[k].specie.symbol})" for k in lonely[:5]) + (" ..." if len(lonely) > 5 else "")
    noun = "atom" if len(lonely) == 1 else "atoms"
    return [f"{noun} {shown} without a neighbour within {r_max:g} Å: only the self-edge is used (as the release did)"]


def build_rows(items, ensemble, labels: dict[str, dict] | None = None, progress: bool | str = "auto",
               labels_path=None, device: str = "cpu") -> list[InputRow]:
    """Read and graph every input (``(id, path or Structure or Atoms, reason)`` items, as from
    :func:`~betenet.data.structures.gather_inputs`) the way ``ensemble``'s members built theirs, with the
    warnings of the module docstring. The site PhDOS a CPD/FPD variant needs comes from ``labels`` (id → record;
    ``labels_path`` is its file, whose ``metadata.json`` says where its PhDOS came from), and, for
    an ensemble trained on ML-potential PhDOS, from the same potential and recipe for every structure
    without one (cached; ``device`` where the potential runs). A labels row is refused, its file named, when
    its PhDOS is not physically possible or belongs to another structure (its recorded ``structure_hash``,
    or the labels folder's own structure of that id, differs). Members trained with pretrained site
    features (``features``) get them computed the same way (cached). A PhDOS of another origin than the
    members' gets a warning. Atoms without a neighbour are kept with their self-edge and a warning."""
    from betenet.data.datamodule import entry_to_graph
    from betenet.data.sources.base import IDENTITY_KEYS, build_entry
    from betenet.data.sources.directory import check_labels_structure
    from betenet.data.structures import load_structure
    from betenet.inference.combine import show_progress

    if ensemble.site_dos is None:
        raise InputError(ensemble.label, f"cannot tell which site PhDOS the members read (no {RunDir.CONFIG} "
                                          "beside the checkpoints); use the run folders")
    settings = dict(ensemble.graph_settings, allow_isolated=True)
    kind = settings["site_dos_kind"]
    keys = () if kind == "none" else (f"phdos_{kind}_freq_meV", f"phdos_{kind}_site", *IDENTITY_KEYS)
    coverage, n_known = ensemble.element_coverage()
    synthetic = [SYNTHETIC_WARNING] if trained_on_demo(ensemble) else []
    items = list(items)
    rows, entries = [], {}
    for ident, source, reason in tqdm(items, desc="read structures", unit="structure", leave=False,
                                      disable=not show_progress(progress, len(items))):
        row = InputRow(ident, source if isinstance(source, Path) else None)
        rows.append(row)
        if reason is not None:
            row.status = reason
            continue
        name = str(source) if isinstance(source, (str, Path)) else ident
        try:
            structure = load_structure(source, name=name)
            row.formula = structure.composition.reduced_formula
        except InputError as err:
            row.status = err.reason if err.subject in (ident, name) else str(err)
            continue
        record = {k: v for k, v in (labels or {}).get(ident, {}).items() if k in keys}
        try:
            if record and labels_path is not None:
                check_labels_structure(ident, structure, labels_path, source)
            entries[id(row)] = build_entry(ident, structure, row.formula, record)
        except InputError as err:  # the labels row cannot be this structure's: say which file it is from
            reason = err.reason if err.subject in (ident, name) else str(err)
            named = not record or labels_path is None or str(labels_path) in reason
            row.status = reason if named else f"labels {labels_path}: {reason}"
    todo = [entries[id(r)] for r in rows if id(r) in entries]
    phdos_notes, failed = _site_dos(ensemble, kind, todo, labels_path, device, progress)
    features, no_features = _features(ensemble, [e for e in todo if e.id not in failed], device, progress)
    failed.update(no_features)
    for row in rows:
        entry = entries.get(id(row))
        if entry is None:
            continue
        try:
            if entry.id in failed:
                raise InputError(entry.id, failed[entry.id])
            row.graph = entry_to_graph(entry, **settings, features=features.get(entry.id))
            elements = {site.specie.symbol for site in entry.structure}
            row.warnings = synthetic + _element_warnings(elements, coverage, n_known) + \
                _isolated_warning(entry.structure, row.graph, settings["r_max"]) + \
                ([phdos_notes[entry.id]] if phdos_notes.get(entry.id) else [])
        except InputError as err:
            row.graph = None
            row.status = err.reason if err.subject == entry.id else str(err)
            if kind != "none" and not labels and "phonon DOS" in row.status:
                row.status += " (give --labels with phdos_* columns)"
    return rows


def _site_dos(ensemble, kind: str, entries: list, labels_path, device: str, progress) -> tuple[dict, dict]:
    """Fill the site PhDOS the members' recipe computes (``betenet.phonons.site_dos_for_prediction``):
    ``({id: provenance warning or None}, {id: why its PhDOS could not be computed})``."""
    if kind == "none" or not entries:
        return {}, {}
    from betenet.inference.combine import show_progress
    from betenet.phonons.fill import labels_metadata, site_dos_for_prediction
    from betenet.phonons.provenance import provenance_from_config

    metadata = labels_metadata(labels_path) if labels_path else None
    report, notes = site_dos_for_prediction(entries, kind, provenance_from_config(ensemble.config),
                                            metadata=metadata, device=device,
                                            progress=show_progress(progress, len(entries)))
    return notes, (dict(report.failed) if report is not None else {})


def _features(ensemble, entries: list, device: str, progress) -> tuple[dict, dict]:
    """The pretrained site features of the members' recipe (:mod:`betenet.pretrained`), cached:
    ``({id: [n_atoms, F] array}, {id: why they could not be computed})``; ``({}, {})`` without features."""
    settings = ensemble.features
    if not settings.enabled or not entries:
        return {}, {}
    import dataclasses

    from betenet.inference.combine import show_progress
    from betenet.pretrained import features_for_entries

    report = features_for_entries(entries, dataclasses.replace(settings, device=device),
                                  progress=show_progress(progress, len(entries)))
    return report.features, dict(report.failed)
