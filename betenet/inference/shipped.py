"""Ensembles that ship inside the package, by name: ``load_ensemble("jarvis-tc")`` and
``betenet predict --ensemble jarvis-tc`` find them without a path. Each is a folder of member run folders
(``final.ckpt`` weights, loaded with ``weights_only``, and the run records) plus its ``calibration.json``,
under ``betenet/shipped/``; ``experiments/ship_jarvis_tc.py`` rebuilds one, and README's model card says
what it was trained on and how well it does."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: Shipped ensemble name → its folder under ``betenet/shipped/``.
SHIPPED = {"jarvis-tc": "jarvis_tc"}


def shipped_dir() -> Path:
    return Path(str(resources.files("betenet"))) / "shipped"


def resolve(path) -> Path:
    """``path`` itself when it exists (a folder or file always wins), else the shipped ensemble of that name."""
    p = Path(path)
    if p.exists() or str(path) not in SHIPPED:
        return p
    return shipped_dir() / SHIPPED[str(path)]
