"""Forces on the displaced supercells of one structure, all of them through the potential together.

:func:`supercell_forces` is what :func:`betenet.phonons.harmonic.force_constants` calls. For the
potentials with a batched graph path of their own, the cells go through the network as batches of
graphs (a batch is closed before it would exceed ``batch_edges`` edges): SevenNet-0 through its
``AtomGraphSequential`` in batch mode (graphs built by sevenn's own ``unlabeled_atoms_to_graph`` and
joined by torch_geometric's collater, as sevenn's ``torchsim`` interface does), CHGNet through
``CHGNet.predict_graph`` on a list of its crystal graphs. Every other calculator (EMT, a calculator
given by a test) is called once per cell through ASE, as before. ``batch_edges=0`` forces that
one-by-one path for every potential.

The batched and the one-by-one paths give the same forces: each graph's rows go through the same
operations in both (bit for bit on CPU for both potentials; tests/test_phonons_batch.py compares the
PhDOS). On CPU, batches larger than a few thousand edges are slower per edge than single cells (the
intermediate tensors no longer fit the caches; benchmarks/RESULTS.md), hence the CPU budget; on a GPU a
larger budget (:data:`GPU_BATCH_EDGES`) fills the device.
"""

from __future__ import annotations

import numpy as np

#: Default edges per batched forward pass on CPU and on a GPU (SevenNet-0: 5 Å neighbour lists, CHGNet: its
#: 6 Å atom graph).
CPU_BATCH_EDGES = 6000
GPU_BATCH_EDGES = 400_000


def default_batch_edges(device: str) -> int:
    """The edge budget of one forward pass on ``device`` (module docstring)."""
    return GPU_BATCH_EDGES if str(device).startswith("cuda") else CPU_BATCH_EDGES


def _ase_forces(cells, calculator) -> list[np.ndarray]:
    forces = []
    for cell in cells:
        cell.calc = calculator
        forces.append(np.asarray(cell.get_forces(), dtype=float))
        cell.calc = None
    return forces


def _packs(sizes, budget: int) -> list[list[int]]:
    """Consecutive groups of indices whose ``sizes`` add up to at most ``budget`` (a single item larger
    than the budget is a group of its own)."""
    groups, current, total = [], [], 0
    for k, size in enumerate(sizes):
        if current and total + size > budget:
            groups.append(current)
            current, total = [], 0
        current.append(k)
        total += size
    if current:
        groups.append(current)
    return groups


def _sevenn_forces(cells, calculator, batch_edges: int) -> list[np.ndarray]:
    import sevenn._keys as KEY
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from torch_geometric.loader.dataloader import Collater

    graphs = [unlabeled_atoms_to_graph(cell, calculator.cutoff, with_shift=False) for cell in cells]
    collate = Collater([], follow_batch=None, exclude_keys=None)
    model = calculator.model
    out: list[np.ndarray] = [None] * len(cells)  # type: ignore[list-item]
    model.set_is_batch_data(True)
    try:
        for group in _packs([g[KEY.EDGE_IDX].shape[1] for g in graphs], batch_edges):
            data = [AtomGraphData.from_numpy_dict(graphs[k]) for k in group]
            if calculator.modal:
                for d in data:
                    d[KEY.DATA_MODALITY] = calculator.modal
            batch = collate(data).to(calculator.device)
            forces = model(batch)[KEY.PRED_FORCE].detach().cpu().numpy().astype(float)
            start = 0
            for k in group:
                n = len(cells[k])
                out[k] = forces[start : start + n]
                start += n
    finally:
        model.set_is_batch_data(False)  # the calculator's own (single-cell) mode again
    return out


def _chgnet_forces(cells, calculator, batch_edges: int) -> list[np.ndarray]:
    from pymatgen.io.ase import AseAtomsAdaptor

    model = calculator.model
    graphs = [model.graph_converter(AseAtomsAdaptor.get_structure(cell)) for cell in cells]
    out: list[np.ndarray] = [None] * len(cells)  # type: ignore[list-item]
    for group in _packs([len(g.atom_graph) for g in graphs], batch_edges):
        preds = model.predict_graph([graphs[k].to(calculator.device) for k in group], task="efsm",
                                    batch_size=len(group))
        preds = [preds] if isinstance(preds, dict) else preds
        for k, p in zip(group, preds):
            out[k] = np.asarray(p["f"], dtype=float)
    return out


def supercell_forces(cells, calculator, batch_edges: int | None = None) -> list[np.ndarray]:
    """Forces (eV/Å, [n_atoms, 3] each) on the ASE ``cells`` from ``calculator``, batched where the
    potential has a batched path (module docstring). ``batch_edges``: edges per forward pass (None: the
    device's default; 0: one cell at a time through ASE)."""
    cells = list(cells)
    if not cells:
        return []
    kind = type(calculator).__name__
    if batch_edges is None:
        batch_edges = default_batch_edges(getattr(calculator, "device", "cpu"))
    if batch_edges <= 0:
        return _ase_forces(cells, calculator)
    if kind == "SevenNetCalculator" and hasattr(calculator, "model") and hasattr(calculator.model, "set_is_batch_data"):
        return _sevenn_forces(cells, calculator, batch_edges)
    if kind == "CHGNetCalculator" and hasattr(calculator, "model"):
        return _chgnet_forces(cells, calculator, batch_edges)
    return _ase_forces(cells, calculator)
