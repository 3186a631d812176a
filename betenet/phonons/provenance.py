"""Where a site PhDOS came from, as a small dict, and the warning when a model trained on PhDOS of one
origin is given PhDOS of another.

A provenance is ``{"source": ..., "kind": ...}`` plus, for ML-potential PhDOS, the recipe:
``source`` is ``dataset`` (the data's own, e.g. DFT), ``mlip`` (computed with an ML potential: then
``potential``, ``potential_version``, ``supercell``, ``mesh``, ``displacement_A``, ``sigma_meV``,
``relax`` and, for the fine kind, ``fine_length_A``), ``fill`` (training only: the data's own where
given, the potential's for the rest) or ``none`` (a CSO model reads no PhDOS). A training run records
its provenance in ``config_resolved.yaml`` as ``site_dos_provenance``; :func:`provenance_from_config`
reads it back (or reconstructs it from older configs).
"""

from __future__ import annotations

#: The recipe fields compared between training and prediction (those present in both).
RECIPE_KEYS = ("potential", "potential_version", "supercell", "fine_length_A", "mesh", "displacement_A",
               "sigma_meV", "relax")


def mlip_provenance(kind: str, settings) -> dict:
    """Provenance of ``kind`` PhDOS computed under ``settings`` (:class:`PhononSettings`)."""
    key = settings.key()
    out = {"source": "mlip", "kind": kind}
    out.update({k: key[k] for k in RECIPE_KEYS if k in key and (k != "fine_length_A" or kind == "fine")})
    return out


def dataset_provenance(kind: str, metadata: dict | None = None) -> dict:
    """Provenance of PhDOS read from a dataset: the dataset's own record (``metadata.json`` key
    ``site_dos_provenance``, as ``betenet phonons`` writes it) when it has one, else ``dataset``."""
    recorded = (metadata or {}).get("site_dos_provenance")
    if isinstance(recorded, dict) and recorded.get("source"):
        out = {k: v for k, v in recorded.items() if k != "kinds"}
        out["kind"] = kind
        return out
    return {"source": "dataset", "kind": kind}


def provenance_from_config(cfg: dict | None) -> dict | None:
    """The PhDOS provenance of a training run from its resolved config (a plain dict): the recorded
    ``site_dos_provenance`` when present, else rebuilt from ``data.site_dos``, ``site_dos_source``
    and ``phonons`` (runs older than the record); None without a config."""
    if not cfg:
        return None
    recorded = cfg.get("site_dos_provenance")
    if isinstance(recorded, dict) and recorded.get("source"):
        return dict(recorded)
    data = cfg.get("data") or {}
    kind = str(data.get("site_dos") or "none")
    if kind == "none":
        return {"source": "none", "kind": "none"}
    source = str(data.get("site_dos_source") or cfg.get("site_dos_source") or "dataset")
    out = {"source": source, "kind": kind}
    if source in ("mlip", "fill"):
        phonons = dict(data.get("phonons") or cfg.get("phonons") or {})
        out.update({k: phonons[k] for k in RECIPE_KEYS if k in phonons and (k != "fine_length_A" or kind == "fine")})
    return out


def _describe(p: dict) -> str:
    if p.get("source") == "mlip":
        return f"ML-potential PhDOS ({p.get('potential', '?')})"
    if p.get("source") == "fill":
        return "dataset PhDOS completed by an ML potential"
    return "the dataset's own PhDOS (e.g. DFT)"


def provenance_warning(trained: dict | None, given: dict | None) -> str | None:
    """A one-line warning when PhDOS of origin ``given`` are fed to a model trained on ``trained``
    (provenance dicts, module docstring); None when they agree or the model reads no PhDOS.

    Warns for DFT-trained given ML-potential PhDOS and the reverse, and for ML-potential PhDOS of
    another potential, version or recipe (the differing fields are named). A ``fill``-trained model
    accepts both origins, but an ML-potential recipe different from its own is still named.
    """
    if not trained or not given or trained.get("source") in (None, "none") or trained.get("kind") == "none":
        return None
    t_src, g_src = trained["source"], given.get("source", "dataset")
    if t_src == "fill" and g_src == "dataset":
        return None
    if (t_src == "dataset") != (g_src == "dataset"):
        return (f"PhDOS origin mismatch: the ensemble was trained on {_describe(trained)} but was given "
                f"{_describe(given)}; predictions may be biased")
    if t_src == "dataset":
        return None
    diffs = [f"{k} {trained[k]!r} -> {given[k]!r}" for k in RECIPE_KEYS
             if k in trained and k in given and trained[k] != given[k]]
    if diffs:
        return "PhDOS recipe differs from training: " + "; ".join(diffs)
    return None
