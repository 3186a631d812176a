"""Inference with trained ensembles: collect members, read structures, predict, write tables.

- :mod:`betenet.inference.ensemble`: :class:`Ensemble` (members, ``predict``, ``predict_structures``),
  :func:`load_ensemble`, :func:`combine_members`;
- :mod:`betenet.inference.inputs`: files, folders, globs or in-memory structures → graphs, with the
  ``warnings`` each prediction carries (unseen elements, atoms without a neighbour);
- :mod:`betenet.inference.predict`: the prediction table (the CSV of ``betenet predict``, the
  DataFrame of ``predict_structures``), safe output paths, the files.
- :mod:`betenet.inference.calibration`: the spread's scale per property, fitted on out-of-bag
  predictions (``betenet calibrate``), stored in the ensemble folder and applied by ``predict``.
- :mod:`betenet.inference.stream`: a pool read in chunks and its outputs appended per chunk (resumable);
- :mod:`betenet.inference.screen`: ``betenet screen`` on unlabelled structures, the two-stage funnel
  (:mod:`~betenet.inference.funnel` stage 2, :mod:`~betenet.inference.screen_cluster` the job array,
  :mod:`~betenet.inference.candidates` its tables).

    >>> from betenet.inference import load_ensemble
    >>> ens = load_ensemble("multirun/default/cso")
    >>> table = ens.predict_structures([structure1, atoms2])   # pymatgen Structure or ASE Atoms
"""

from betenet.inference.ensemble import (Ensemble, EnsemblePrediction, Member, combine_members, detect_source,
                                        load_ensemble, load_member)

__all__ = ["Ensemble", "EnsemblePrediction", "Member", "combine_members", "detect_source", "load_ensemble",
           "load_member"]
