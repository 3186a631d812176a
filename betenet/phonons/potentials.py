"""Registry of the interatomic potentials that give forces for finite-displacement phonons: a name
(``sevenn``, ``chgnet``, ``emt``) → a factory of an ASE calculator, the package that provides it, a
version string for cache keys and provenance, and the elements it covers.

Only potentials whose weights ship inside their PyPI wheel are registered, so nothing is downloaded
at run time: SevenNet-0 (``sevenn``, checkpoint ``SevenNet_0__11Jul2024`` in the wheel), CHGNet 0.3.0
(``chgnet``, in the wheel) and ASE's effective-medium theory (``emt``, parameters in ASE itself; a
handful of fcc metals only, for tests and quick checks). ``sevenn`` and ``chgnet`` come with the
optional extra ``pip install betenet[phonons]``; their imports happen only when a calculator is made,
and a missing package raises :class:`PotentialUnavailable` naming that command. The default,
SevenNet-0, is the one closer to Quantum ESPRESSO on fcc Al (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import warnings
from dataclasses import dataclass
from typing import Callable

from betenet.errors import InputError

#: The potential used when none is named (see the module docstring and benchmarks/RESULTS.md).
DEFAULT_POTENTIAL = "sevenn"
#: What to install for the optional potentials and phonopy.
EXTRA_HINT = "pip install 'betenet[phonons]'"
DEVICES = ("cpu", "cuda")


class PotentialUnavailable(InputError):
    """A potential (or phonopy) whose package is not installed."""


@dataclass(frozen=True)
class Potential:
    """One registered potential: ``factory(device)`` returns a fresh ASE calculator; ``elements(calc)``
    the element symbols it covers (None: no list to check against)."""

    name: str
    package: str
    model: str
    description: str
    factory: Callable[[str], object]
    elements: Callable[[object], frozenset | None]

    def version(self) -> str:
        """``"<package> <version>, <model>"``: changes whenever the package (and so its weights) does."""
        try:
            pkg = importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            pkg = "not installed"
        return f"{self.package} {pkg}, {self.model}"


def _require(package: str, potential: str):
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise PotentialUnavailable(
            f"potential {potential!r}", f"needs the {package} package ({exc}); install it with {EXTRA_HINT}"
        ) from None


@contextlib.contextmanager
def _quiet():
    """Silence the banner lines and advisory warnings the potentials print when they load."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _sevenn(device: str):
    _require("sevenn", "sevenn")
    from sevenn import _const
    from sevenn.calculator import SevenNetCalculator

    path = _const.SEVENNET_0_11Jul2024  # inside the wheel; never the download link
    if not os.path.isfile(path):
        raise PotentialUnavailable("potential 'sevenn'", f"SevenNet-0 checkpoint missing from the wheel ({path})")
    with _quiet():
        return SevenNetCalculator(path, device=device)


def _sevenn_elements(calc) -> frozenset | None:
    from ase.data import chemical_symbols

    return frozenset(chemical_symbols[int(z)] for z in calc.type_map)


def _chgnet(device: str):
    _require("chgnet", "chgnet")
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    with _quiet():
        model = CHGNet.load(model_name="0.3.0", use_device=device, verbose=False)
        return CHGNetCalculator(model=model, use_device=device)


def _chgnet_elements(calc) -> frozenset | None:
    from ase.data import chemical_symbols

    # CHGNet embeds atomic numbers 1..94 (its atom embedding has one row per element).
    n = int(calc.model.atom_embedding.embedding.num_embeddings)
    return frozenset(chemical_symbols[1 : n + 1])


def _emt(device: str):
    from ase.calculators.emt import EMT

    return EMT()


def _emt_elements(calc) -> frozenset | None:
    from ase.calculators.emt import parameters

    return frozenset(parameters)


POTENTIALS: dict[str, Potential] = {
    p.name: p
    for p in (
        Potential("sevenn", "sevenn", "SevenNet-0 (11Jul2024)",
                  "SevenNet-0: e3nn-based equivariant potential trained on MPtrj (PBE), 89 elements",
                  _sevenn, _sevenn_elements),
        Potential("chgnet", "chgnet", "CHGNet 0.3.0",
                  "CHGNet 0.3.0: graph network trained on MPtrj (PBE), elements up to Pu",
                  _chgnet, _chgnet_elements),
        Potential("emt", "ase", "EMT",
                  "ASE effective-medium theory: Al, Cu, Ag, Au, Ni, Pd, Pt (+ H, C, N, O); tests and quick checks",
                  _emt, _emt_elements),
    )
}


def get_potential(name: str) -> Potential:
    """The registered potential ``name``; an unknown name raises ``InputError`` listing the known ones."""
    try:
        return POTENTIALS[name]
    except KeyError:
        raise InputError(f"potential {name!r}", f"unknown; use one of {', '.join(POTENTIALS)}") from None


def check_device(device: str) -> str:
    """``cpu`` or ``cuda`` (the latter only where torch sees a GPU)."""
    if device not in DEVICES:
        raise InputError(f"device {device!r}", f"unknown; use one of {', '.join(DEVICES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("device 'cuda'", "torch sees no CUDA device here; use --device cpu")
    return device


def make_calculator(name: str, device: str = "cpu"):
    """A fresh ASE calculator of the registered potential ``name`` on ``device``."""
    potential = get_potential(name)
    return potential.factory(check_device(device))
