"""Quantum ESPRESSO data pipeline: structure → input decks → resumable runs → parsed, filtered dataset.

Modules, in the order the data flows:

- ``settings``: DFT profiles from ``conf/dft/*.yaml`` (``paper``, ``qe_example``), typed and checked.
- ``qe_input``: Fortran namelists and pw.x cards.
- ``workflow``: the steps of a material and ``workflow.json``.
- ``inputs``: standard cell, CIF site order, k/q grids (``betenet.physics.grids``), the decks, ``run.sh``.
- ``state`` / ``runners``: ``state.json`` (a finished step is never rerun), local and submitit runners.
- ``parsers``: a2F.dosN, matdyn lambda and DOS, ph.x, pw.x, projwfc.x outputs.
- ``filters``: the paper's filters on the collected records.
- ``collect`` / ``dataset``: records and labels; the generic directory and release writers.
- ``cli``: ``betenet dft inputs | run | collect``.
"""
