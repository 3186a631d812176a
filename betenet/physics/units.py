"""Units and the a2F frequency grid shared by the whole package (meV, K, Ry)."""

import numpy as np

#: 1 meV expressed in kelvin (k_B = 0.08617333 meV/K).
MEV_TO_K = 11.604518
#: 1 Rydberg expressed in meV.
RY_TO_MEV = 13605.693
#: 1 THz (h*nu) expressed in meV.
THZ_TO_MEV = 4.135667696
#: 1 cm^-1 expressed in meV.
CMM1_TO_MEV = 0.1239841984

#: Number of a2F bins the network predicts.
N_BINS = 51
#: Bin centres in meV: 0.25 + 2k, k = 0..50.
BIN_CENTRES_MEV = np.arange(0.25, 101.0, 2.0)
assert BIN_CENTRES_MEV.shape == (N_BINS,)

#: Default Coulomb pseudopotential.
MU_STAR_DEFAULT = 0.10
