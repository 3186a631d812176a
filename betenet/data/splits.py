"""Dataset splits: element-balanced train/test split, bootstrap ensemble members, the BETE-NET
release's index files and user-given ``splits.json`` files.

Bootstrap (paper, Methods): each ensemble member trains on ``n`` ids drawn with replacement from the
``n`` training ids and validates on the out-of-bag ids (those never drawn, about
``(1 - 1/n)^n ≈ 36.8 %`` of them). Two ways to use a draw:

- ``mode="weighted"`` (default): a true bootstrap. Each distinct drawn id is kept once with a weight
  equal to the number of times it was drawn (weights sum to ``n``); a loss weighted by them equals
  the loss over the raw draw.
- ``mode="unique"``: each drawn id counts once (all weights 1). This is what the release's training
  code did (``df[df.index.isin(idx_train)]`` drops the repeats), so use it to reproduce the release.

A bootstrap member sees about 63 % of the distinct training ids. :func:`subsample_member` is the
alternative with a larger share: a fraction ``f`` of the ids drawn without replacement (weights 1), the
rest ``1 - f`` out-of-bag, so that out-of-bag validation and calibration stay defined.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from betenet import validation
from betenet.errors import InputError

BOOTSTRAP_MODES = ("weighted", "unique")

# File names of the release's index directory (``indices/``).
RELEASE_TRAIN_FULL = "idx_train_full.txt"
RELEASE_TEST_FULL = "idx_test_full.txt"
RELEASE_TRAIN_MEMBER = "idx_train_V2_{k}.txt"
RELEASE_VALID_MEMBER = "idx_valid_V2_{k}.txt"


# --------------------------------------------------------------------------------------------
# Element-balanced train/test split
# --------------------------------------------------------------------------------------------


def _check_unique(ids: Sequence, source: str) -> None:
    counts = Counter(ids)
    repeated = [i for i, c in counts.items() if c > 1]
    if repeated:
        raise InputError(source, f"ids repeated: {repeated[:10]}")


def _elements_for(ids: Sequence, elements_of: Mapping) -> list[frozenset[str]]:
    missing = [i for i in ids if i not in elements_of]
    if missing:
        raise InputError("elements_of", f"no elements given for ids {missing[:10]}")
    as_text = [i for i in ids if isinstance(elements_of[i], str)]
    if as_text:
        raise InputError("elements_of",
                         f"give sets of symbols, not strings, for ids {as_text[:10]}")
    return [frozenset(elements_of[i]) for i in ids]


def element_balanced_split(
    ids: Sequence[Hashable],
    elements_of: Mapping[Hashable, Iterable[str]],
    test_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[list, list]:
    """Split ``ids`` into ``(train_ids, test_ids)`` with ``round(test_fraction * n)`` test ids and
    every element present in at least two entries represented on both sides where possible.

    Greedy, deterministic in ``seed`` (the seed only orders ties):

    1. coverage: elements are visited from the rarest; an element with no test entry yet gets one,
       choosing the entry that covers the most still-uncovered elements;
    2. fill: until the test set has its size, move the entry that most lowers the chi-square
       ``sum_c (t_c - f n_c)^2 / n_c`` over categories ``c`` = each element and each number of
       elements per entry (unary, binary, ...), where ``n_c`` entries are in ``c``, ``t_c`` of them
       in the test set and ``f = test_fraction``. Balancing the number of elements too keeps the
       fill from favouring ternaries, which would lower the cost on three elements at once.

    No move ever takes the last training entry of an element with two or more entries, so the
    training side always keeps every such element; an element is left without a test entry only
    when the test size or that constraint leaves no choice.
    Returned lists keep the order of ``ids``.
    """
    ids = list(ids)
    _check_unique(ids, "ids")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    elems = _elements_for(ids, elements_of)
    n = len(ids)
    n_test = int(round(test_fraction * n))

    # categories of each entry: its elements (str) and its number of elements (tuple key)
    cats = [list(es) + [("n_elements", len(es))] for es in elems]
    total = Counter(c for cs in cats for c in cs)
    in_train = Counter(total)
    in_test: Counter = Counter()
    is_test = [False] * n
    n_moved = 0
    rank = np.random.default_rng(seed).permutation(n)  # tie-break order

    def movable(i: int) -> bool:
        return not is_test[i] and all(in_train[e] > 1 or total[e] < 2 for e in elems[i])

    def move(i: int) -> None:
        nonlocal n_moved
        is_test[i] = True
        n_moved += 1
        for c in cats[i]:
            in_train[c] -= 1
            in_test[c] += 1

    # 1. coverage, rarest element first (the symbol breaks ties in count, for determinism)
    shared = sorted((e for es in elems for e in es if total[e] >= 2), key=lambda e: (total[e], e))
    for element in dict.fromkeys(shared):
        if n_moved >= n_test:
            break
        if in_test[element] > 0:
            continue
        candidates = [i for i in range(n) if element in elems[i] and movable(i)]
        if candidates:
            move(max(candidates, key=lambda i: (
                sum(1 for e in elems[i] if total[e] >= 2 and in_test[e] == 0), -rank[i])))

    # 2. fill: the move that most lowers the chi-square (its change for entry i is below)
    def cost_change(i: int) -> float:
        return sum((2.0 * (in_test[c] - test_fraction * total[c]) + 1.0) / total[c]
                   for c in cats[i])

    while n_moved < n_test:
        candidates = [i for i in range(n) if movable(i)]
        if not candidates:
            break
        move(min(candidates, key=lambda i: (cost_change(i), rank[i])))

    train = [i for i, t in zip(ids, is_test) if not t]
    test = [i for i, t in zip(ids, is_test) if t]
    return train, test


# --------------------------------------------------------------------------------------------
# Bootstrap members
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapSplit:
    """One bootstrap ensemble member.

    ``drawn``: the raw draw (with repeats). ``train_ids``: its distinct ids, in order of first draw.
    ``weights``: float array aligned with ``train_ids`` (draw counts in mode ``weighted``, ones in
    mode ``unique``). ``val_ids``: the out-of-bag ids (training ids never drawn).
    """

    train_ids: list
    weights: np.ndarray
    val_ids: list
    drawn: list
    mode: str

    @property
    def unique_fraction(self) -> float:
        """Distinct drawn ids over draw size (expected ``1 - (1 - 1/n)^n`` for a fresh draw)."""
        return len(self.train_ids) / len(self.drawn) if self.drawn else 0.0


def member_from_draw(drawn: list, val_ids: list, mode: str) -> BootstrapSplit:
    if mode not in BOOTSTRAP_MODES:
        raise ValueError(f"bootstrap mode must be one of {BOOTSTRAP_MODES}, got {mode!r}")
    counts = Counter(drawn)  # insertion order = order of first draw
    train_ids = list(counts)
    if mode == "weighted":
        weights = np.array([counts[i] for i in train_ids], dtype=float)
    else:
        weights = np.ones(len(train_ids), dtype=float)
    return BootstrapSplit(train_ids=train_ids, weights=weights, val_ids=list(val_ids),
                          drawn=list(drawn), mode=mode)


def bootstrap_member(
    train_ids: Sequence[Hashable], k: int, mode: str = "weighted"
) -> BootstrapSplit:
    """Bootstrap member ``k``: ``len(train_ids)`` ids drawn with replacement using
    ``numpy.random.default_rng(k)``; the out-of-bag ids (in ``train_ids`` order) validate it.

    ``mode="weighted"`` (default) is a true bootstrap; ``mode="unique"`` keeps each drawn id once,
    as the release's training code did (see the module docstring).
    """
    train_ids = list(train_ids)
    _check_unique(train_ids, "train_ids")
    n = len(train_ids)
    if n == 0:
        raise InputError("train_ids", "empty: nothing to resample")
    picks = np.random.default_rng(k).integers(0, n, size=n)
    drawn = [train_ids[p] for p in picks]
    seen = set(drawn)
    return member_from_draw(drawn, [i for i in train_ids if i not in seen], mode)


def subsample_member(train_ids: Sequence[Hashable], k: int, fraction: float) -> BootstrapSplit:
    """Member ``k`` trained on ``round(fraction * n)`` of the ``n`` training ids drawn without replacement
    (``numpy.random.default_rng(k)``; at least one id, at most ``n - 1`` so that one stays out of bag), each
    weight 1; the rest, in ``train_ids`` order, validates it (mode ``unique``)."""
    train_ids = list(train_ids)
    _check_unique(train_ids, "train_ids")
    n = len(train_ids)
    fraction = validation.open_fraction(fraction, "data.subsample_fraction")
    if n < 2:
        raise InputError("train_ids", f"{n} training ids: a subsample needs at least 2 (one out of bag)")
    size = min(max(int(round(fraction * n)), 1), n - 1)
    picks = np.random.default_rng(k).permutation(n)[:size]
    drawn = [train_ids[p] for p in sorted(picks)]
    seen = set(drawn)
    return member_from_draw(drawn, [i for i in train_ids if i not in seen], "unique")


# --------------------------------------------------------------------------------------------
# The release's index files
# --------------------------------------------------------------------------------------------


def read_release_ids(path: str | Path) -> list[int]:
    """Ids of a release index file: one float per line (``7.100000000000000000e+01``) → ``int``.
    Order and repeats are kept; blank lines are skipped."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(path, f"cannot read index file ({exc.strerror or exc})") from exc
    ids = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        token = line.strip()
        if not token:
            continue
        try:
            value = float(token)
        except ValueError:
            raise InputError(path, f"line {lineno}: {token!r} is not a number") from None
        if not np.isfinite(value) or value < 0 or value != int(value):
            raise InputError(path, f"line {lineno}: {token!r} is not a non-negative integer id")
        ids.append(int(value))
    return ids


def release_split(indices_dir: str | Path) -> tuple[list[int], list[int]]:
    """The release's train/test split from ``idx_train_full.txt`` and ``idx_test_full.txt``
    (each id once, the two sets disjoint)."""
    indices_dir = Path(indices_dir)
    train_path, test_path = indices_dir / RELEASE_TRAIN_FULL, indices_dir / RELEASE_TEST_FULL
    train, test = read_release_ids(train_path), read_release_ids(test_path)
    _check_unique(train, str(train_path))
    _check_unique(test, str(test_path))
    overlap = sorted(set(train) & set(test))
    if overlap:
        raise InputError(test_path, f"ids also in {train_path.name}: {overlap[:10]}")
    return train, test


def release_bootstrap(indices_dir: str | Path, k: int, mode: str = "weighted") -> BootstrapSplit:
    """Bootstrap member ``k`` of the release: ``idx_train_V2_k.txt`` is the raw draw (with
    repeats), ``idx_valid_V2_k.txt`` its out-of-bag ids. ``mode`` as in :func:`bootstrap_member`
    (``"unique"`` reproduces the release's training)."""
    indices_dir = Path(indices_dir)
    train_path = indices_dir / RELEASE_TRAIN_MEMBER.format(k=k)
    valid_path = indices_dir / RELEASE_VALID_MEMBER.format(k=k)
    drawn, valid = read_release_ids(train_path), read_release_ids(valid_path)
    if not drawn:
        raise InputError(train_path, "no ids")
    _check_unique(valid, str(valid_path))
    overlap = sorted(set(drawn) & set(valid))
    if overlap:
        raise InputError(valid_path, f"validation ids also drawn for training: {overlap[:10]}")
    return member_from_draw(drawn, valid, mode)


# --------------------------------------------------------------------------------------------
# User-given splits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSplit:
    """Ids of a train/val/test split (``val`` may be empty: bootstrap members then use their
    out-of-bag ids)."""

    train: list
    val: list
    test: list


SPLIT_KEYS = ("train", "val", "test")


def given_split(path: str | Path, known_ids: Iterable[Hashable] | None = None) -> DataSplit:
    """Read ``splits.json`` ``{"train": [...], "val": [...], "test": [...]}`` ("val" and "test"
    optional: an absent part is empty, e.g. a leaderboard's train/val file without its held-out test).

    Ids are ints or strings, returned as written; they are compared by their text (``7`` and
    ``"7"`` name the same structure file). Raises :class:`InputError` naming the file for bad
    JSON, unknown keys, missing ``train``/``test``, repeated ids, ids in two parts, or (when
    ``known_ids`` is given) ids that are not in the dataset.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(path, f"cannot read split file ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(path, 'expected an object {"train": [...], "val": [...], "test": [...]}')
    unknown_keys = sorted(set(data) - set(SPLIT_KEYS))
    if unknown_keys:
        raise InputError(path, f"unknown keys {unknown_keys}; allowed: {list(SPLIT_KEYS)}")
    if "train" not in data:
        raise InputError(path, 'missing "train"')

    parts: dict[str, list] = {}
    for key in SPLIT_KEYS:
        values = data.get(key, [])
        if not isinstance(values, list):
            raise InputError(path, f'"{key}" must be a list of ids')
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, str))]
        if bad:
            raise InputError(path, f'"{key}": ids must be integers or strings, got {bad[:5]}')
        repeated = sorted(v for v, c in Counter(map(str, values)).items() if c > 1)
        if repeated:
            raise InputError(path, f'"{key}": ids repeated: {repeated[:10]}')
        parts[key] = values
    if not parts["train"]:
        raise InputError(path, '"train" is empty')

    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = set(map(str, parts[a])) & set(map(str, parts[b]))
        if both:
            raise InputError(path, f'ids in both "{a}" and "{b}": {sorted(both)[:10]}')

    if known_ids is not None:
        known = set(map(str, known_ids))
        for key in SPLIT_KEYS:
            unknown = [v for v in parts[key] if str(v) not in known]
            if unknown:
                raise InputError(path, f'"{key}": ids not in the dataset: {unknown[:10]}')
    return DataSplit(train=parts["train"], val=parts["val"], test=parts["test"])
