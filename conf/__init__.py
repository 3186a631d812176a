"""betenet's Hydra configuration, installed as the package data ``betenet.conf`` (see betenet/config.py).

:data:`CONF_DIR` is its folder on disk (``conf/`` of a checkout, ``site-packages/betenet/conf`` of a wheel): the
one place every reader of the shipped YAML (the composer, cluster resources, DFT profiles) finds it.
"""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent
