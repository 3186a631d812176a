"""betenet's Hydra configuration, installed as the package data ``betenet.conf`` (see betenet/config.py)."""
