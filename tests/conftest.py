"""Shared test fixtures: where the read-only shared data lives (../shared or $BETENET_SHARED)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Nothing a test runs reaches W&B's servers, even on a machine logged in to W&B (`wandb login`): every test,
# and every process a test starts, logs offline (or not at all where a test disables W&B).
if os.environ.get("WANDB_MODE") != "disabled":
    os.environ["WANDB_MODE"] = "offline"


def shared_root() -> Path | None:
    env = os.environ.get("BETENET_SHARED")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    root = shared_root()
    if root is None:
        pytest.skip("shared data not found: set BETENET_SHARED or place it at ../shared")
    return root


@pytest.fixture(scope="session")
def qe_al_dir(shared_dir) -> Path:
    d = shared_dir / "data" / "qe-al-reference"
    if not d.is_dir():
        pytest.skip(f"{d} absent")
    return d


@pytest.fixture(scope="session")
def structures_dir(shared_dir) -> Path:
    d = shared_dir / "data" / "betenet" / "structures"
    if not d.is_dir():
        pytest.skip(f"{d} absent")
    return d


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on two shared cores, OpenMP oversubscription makes small forward passes far
    slower, and numerics (not speed) are what these tests check. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def demo():
    """The tiny trained demo ensembles shared by the ensemble / command / landscape / experiment tests."""
    from _demo_ensemble import demo_ensembles

    return demo_ensembles()
