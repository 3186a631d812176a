"""Eliashberg physics: units, moments of a2F, Tc formulas, the isotropic Eliashberg solver, k/q grids."""
