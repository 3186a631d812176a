"""Small crystals the phonon tests share (not a test module): fcc Al, B2 NiAl, L1_2 Cu3Au, MgB2."""

from pymatgen.core import Lattice, Structure


def fcc_al(a=4.05):
    return Structure(Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]), ["Al"], [[0, 0, 0]])


def b2_nial(a=2.88):
    return Structure(Lattice.cubic(a), ["Ni", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def l12_cu3au(a=3.75):
    return Structure(Lattice.cubic(a), ["Au", "Cu", "Cu", "Cu"],
                     [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def mgb2():
    return Structure(Lattice.hexagonal(3.09, 3.52), ["Mg", "B", "B"],
                     [[0, 0, 0], [1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]])
