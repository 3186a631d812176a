"""betenet: learn the electron-phonon spectral function a2F(w) from crystal structures."""

__version__ = "0.1.0"
