"""Tests of betenet.data.splits: bootstrap statistics, the release's index files, the
element-balanced split on the real structures, and splits.json validation."""

import json
import math
import re
from collections import Counter

import numpy as np
import pytest

from betenet.data.splits import (
    bootstrap_member,
    element_balanced_split,
    given_split,
    read_release_ids,
    release_bootstrap,
    release_split,
)
from betenet.errors import InputError


def unique_count_moments(n: int) -> tuple[float, float]:
    """Mean and variance of the number U of distinct ids in n draws with replacement from n ids.

    U = n - Z with Z = sum_j I_j, I_j = 1 when id j is never drawn:
    E[I_j] = (1 - 1/n)^n = q1, E[I_j I_l] = (1 - 2/n)^n = q2 (j != l), so
    E[U] = n (1 - q1) and Var(U) = Var(Z) = n q1 + n (n - 1) q2 - n^2 q1^2.
    """
    q1 = (1.0 - 1.0 / n) ** n
    q2 = (1.0 - 2.0 / n) ** n
    return n * (1.0 - q1), n * q1 + n * (n - 1) * q2 - (n * q1) ** 2


def assert_unique_fraction_consistent(unique_counts, n):
    """The mean of K independent unique counts lies within 4 standard errors of E[U]."""
    mean, var = unique_count_moments(n)
    k = len(unique_counts)
    assert abs(np.mean(unique_counts) - mean) < 4.0 * math.sqrt(var / k)


# ------------------------------------------------------------------------------------------
# bootstrap_member
# ------------------------------------------------------------------------------------------

IDS = [f"m{i}" for i in range(200)]


def test_unique_count_moments_match_large_n_limit():
    # 1 - (1 - 1/n)^n -> 1 - 1/e = 0.632...; the paper's "62 % unique" is this fraction
    mean, _ = unique_count_moments(100_000)
    assert mean / 100_000 == pytest.approx(1.0 - math.exp(-1.0), abs=1e-5)


def test_bootstrap_unique_fraction_matches_theory():
    members = [bootstrap_member(IDS, k) for k in range(300)]
    assert_unique_fraction_consistent([len(m.train_ids) for m in members], len(IDS))


def test_bootstrap_member_structure():
    n = len(IDS)
    for k in range(20):
        m = bootstrap_member(IDS, k)
        assert len(m.drawn) == n
        assert set(m.train_ids) == set(m.drawn)
        assert len(m.train_ids) == len(set(m.train_ids))
        assert not set(m.val_ids) & set(m.drawn)  # out-of-bag ids were never drawn
        assert set(m.val_ids) | set(m.train_ids) == set(IDS)
        assert m.weights.sum() == n
        assert m.weights.min() >= 1
        # the weighted loss over distinct ids equals the loss over the raw draw
        f = {i: float(j) ** 1.5 for j, i in enumerate(IDS)}
        assert sum(w * f[i] for i, w in zip(m.train_ids, m.weights)) == pytest.approx(
            sum(f[i] for i in m.drawn))
        assert m.unique_fraction == len(m.train_ids) / n


def test_bootstrap_draw_is_default_rng_k_and_deterministic():
    n = len(IDS)
    m = bootstrap_member(IDS, 7)
    assert m.drawn == [IDS[j] for j in np.random.default_rng(7).integers(0, n, size=n)]
    again = bootstrap_member(IDS, 7)
    assert again.drawn == m.drawn and again.val_ids == m.val_ids
    np.testing.assert_array_equal(again.weights, m.weights)
    assert bootstrap_member(IDS, 8).drawn != m.drawn


def test_bootstrap_unique_mode_keeps_each_id_once():
    weighted, unique = bootstrap_member(IDS, 3), bootstrap_member(IDS, 3, mode="unique")
    assert weighted.mode == "weighted" and unique.mode == "unique"
    assert unique.train_ids == weighted.train_ids and unique.val_ids == weighted.val_ids
    np.testing.assert_array_equal(unique.weights, np.ones(len(unique.train_ids)))
    assert weighted.weights.max() > 1  # 200 draws from 200 ids repeat some


def test_bootstrap_rejects_bad_input():
    with pytest.raises(InputError, match="train_ids"):
        bootstrap_member(["a", "b", "a"], 0)
    with pytest.raises(InputError, match="empty"):
        bootstrap_member([], 0)
    with pytest.raises(ValueError, match="mode"):
        bootstrap_member(IDS, 0, mode="bagging")


# ------------------------------------------------------------------------------------------
# the release's index files
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def indices_dir(shared_dir):
    d = shared_dir / "data" / "betenet" / "indices"
    if not d.is_dir():
        pytest.skip(f"{d} absent")
    return d


def test_read_release_ids_parses_float_lines(tmp_path):
    p = tmp_path / "ids.txt"
    p.write_text("7.100000000000000000e+01\n0.000000000000000000e+00\n\n7.1e+01\n")
    assert read_release_ids(p) == [71, 0, 71]


@pytest.mark.parametrize("text, reason", [("3.0\nabc\n", "line 2"), ("7.5e+00\n", "integer"),
                                          ("-1.0\n", "integer"), ("nan\n", "integer")])
def test_read_release_ids_names_file_and_line(tmp_path, text, reason):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(InputError, match=reason) as err:
        read_release_ids(p)
    assert str(p) in str(err.value)
    with pytest.raises(InputError, match="missing.txt"):
        read_release_ids(tmp_path / "missing.txt")


def test_release_split_is_disjoint_80_20(indices_dir, structures_dir):
    train, test = release_split(indices_dir)
    assert not set(train) & set(test)
    # the paper: "an 80-20 train-test split"
    assert round(len(test) / (len(train) + len(test)), 1) == 0.2
    # found in the data: the ids are exactly 0..N-1, and every structure file has one
    ids = set(train) | set(test)
    assert ids == set(range(len(ids)))
    cif_ids = {int(p.stem) for p in structures_dir.glob("*.cif")}
    assert cif_ids <= ids


def release_member_ks(indices_dir) -> list[int]:
    """The member numbers k with both idx_train_V2_k.txt and idx_valid_V2_k.txt."""
    ks = [p.stem.removeprefix("idx_train_V2_") for p in indices_dir.glob("idx_train_V2_*.txt")]
    return sorted(int(k) for k in ks if k.isdigit() and (indices_dir / f"idx_valid_V2_{k}.txt").is_file())


def test_release_bootstrap_members_are_draws_of_the_full_train_split(indices_dir):
    train, _ = release_split(indices_dir)
    ks = release_member_ks(indices_dir)
    assert ks == list(range(len(ks)))  # numbered 0..K-1 without gaps
    assert len(ks) >= 100  # the paper's ensemble has 100 members
    unique_counts = []
    for k in ks:
        m = release_bootstrap(indices_dir, k)
        assert len(m.drawn) == len(train)  # a bootstrap sample of equal size
        assert set(m.drawn) <= set(train)
        assert len(m.train_ids) < len(m.drawn)  # drawn with replacement: repeats
        # the valid file is exactly the out-of-bag part of the full training split, ascending
        assert m.val_ids == sorted(set(train) - set(m.drawn))
        assert m.weights.sum() == len(train)
        unique_counts.append(len(m.train_ids))
    assert_unique_fraction_consistent(unique_counts, len(train))


def test_release_bootstrap_modes(indices_dir):
    weighted = release_bootstrap(indices_dir, 0)
    unique = release_bootstrap(indices_dir, 0, mode="unique")
    counts = Counter(read_release_ids(indices_dir / "idx_train_V2_0.txt"))
    assert weighted.train_ids == unique.train_ids == list(counts)
    np.testing.assert_array_equal(weighted.weights, [counts[i] for i in weighted.train_ids])
    np.testing.assert_array_equal(unique.weights, np.ones(len(counts)))


def test_release_files_inconsistencies_are_input_errors(tmp_path):
    (tmp_path / "idx_train_full.txt").write_text("1.0\n2.0\n3.0\n")
    (tmp_path / "idx_test_full.txt").write_text("3.0\n4.0\n")
    with pytest.raises(InputError, match="idx_test_full.txt"):
        release_split(tmp_path)
    (tmp_path / "idx_train_V2_0.txt").write_text("1.0\n1.0\n2.0\n")
    (tmp_path / "idx_valid_V2_0.txt").write_text("2.0\n3.0\n")
    with pytest.raises(InputError, match="idx_valid_V2_0.txt"):
        release_bootstrap(tmp_path, 0)
    (tmp_path / "idx_valid_V2_0.txt").write_text("3.0\n")
    m = release_bootstrap(tmp_path, 0)
    assert m.train_ids == [1, 2] and list(m.weights) == [2.0, 1.0] and m.val_ids == [3]
    with pytest.raises(InputError, match="idx_train_V2_5.txt"):
        release_bootstrap(tmp_path, 5)


# ------------------------------------------------------------------------------------------
# element-balanced split
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cif_elements(structures_dir):
    """{id: set of element symbols} from each CIF's _chemical_formula_sum (parsed once)."""
    from pymatgen.core import Composition

    pattern = re.compile(r'^_chemical_formula_sum\s+"?([^"\n]+?)"?\s*$', re.MULTILINE)
    elements = {}
    for path in structures_dir.glob("*.cif"):
        match = pattern.search(path.read_text())
        assert match, f"{path}: no _chemical_formula_sum"
        elements[int(path.stem)] = {el.symbol for el in Composition(match.group(1)).elements}
    return elements


def element_count_report(train, test, elements_of) -> dict[str, tuple[int, int]]:
    """{element: (entries in train, entries in test) containing it}."""
    n_train = Counter(e for i in train for e in elements_of[i])
    n_test = Counter(e for i in test for e in elements_of[i])
    return {e: (n_train[e], n_test[e]) for e in sorted(set(n_train) | set(n_test))}


def unbalanced_elements(report) -> list[str]:
    """Elements with at least two entries that are missing from the train or the test side."""
    return [e for e, (a, b) in report.items() if a + b >= 2 and (a == 0 or b == 0)]


def test_element_balanced_split_covers_rare_elements():
    # 50 entries with Cu; "Au" and "Ag" occur twice each: both must land on both sides
    elements_of = {i: {"Cu"} for i in range(50)}
    elements_of[10] = {"Cu", "Au"}
    elements_of[20] = {"Cu", "Au"}
    elements_of[30] = {"Ag"}
    elements_of[40] = {"Ag", "Cu"}
    ids = list(range(50))
    for seed in range(5):
        train, test = element_balanced_split(ids, elements_of, test_fraction=0.2, seed=seed)
        assert len(test) == 10 and sorted(train + test) == ids
        assert train == sorted(train) and test == sorted(test)  # order of ids kept
        assert unbalanced_elements(element_count_report(train, test, elements_of)) == []


def test_element_balanced_split_where_impossible_keeps_training_side():
    # one test slot (0.2 x 5) cannot host both X and Y: one stays train-only, none is test-only
    elements_of = {0: {"X"}, 1: {"X"}, 2: {"Y"}, 3: {"Y"}, 4: {"Z"}}
    train, test = element_balanced_split(list(range(5)), elements_of, test_fraction=0.2)
    report = element_count_report(train, test, elements_of)
    assert len(test) == 1 and len(unbalanced_elements(report)) == 1
    assert all(n_train >= 1 for e, (n_train, _) in report.items() if e in "XY")


def test_element_balanced_split_input_errors():
    with pytest.raises(InputError, match="ids"):
        element_balanced_split([1, 1, 2], {1: {"A"}, 2: {"B"}})
    with pytest.raises(InputError, match="elements_of"):
        element_balanced_split([1, 2], {1: {"A"}})
    with pytest.raises(InputError, match="not strings"):
        element_balanced_split([1, 2], {1: "NbC", 2: {"Nb"}})
    with pytest.raises(ValueError, match="test_fraction"):
        element_balanced_split([1, 2], {1: {"A"}, 2: {"B"}}, test_fraction=1.0)


def mean_abs_deviation(report, fraction):
    return np.mean([abs(b / (a + b) - fraction) for a, b in report.values() if a + b >= 2])


def test_element_balanced_split_on_real_structures(cif_elements, indices_dir):
    ids = sorted(cif_elements)
    train, test = element_balanced_split(ids, cif_elements, test_fraction=0.2, seed=0)
    assert len(test) == round(0.2 * len(ids)) and sorted(train + test) == ids
    report = element_count_report(train, test, cif_elements)
    # every element with >= 2 entries appears on both sides
    assert unbalanced_elements(report) == []
    assert all(a >= 1 and b >= 1 for a, b in report.values() if a + b >= 2)
    # deterministic in the seed; another seed gives another split
    assert element_balanced_split(ids, cif_elements, seed=0) == (train, test)
    assert element_balanced_split(ids, cif_elements, seed=1)[1] != test
    # unary / binary / ternary entries are split 80-20 as well (classes of >= 100 entries)
    n_elements = Counter(len(cif_elements[i]) for i in ids)
    n_elements_test = Counter(len(cif_elements[i]) for i in test)
    for arity, count in n_elements.items():
        if count >= 100:
            assert abs(n_elements_test[arity] / count - 0.2) < 0.02
    # per-element test fractions are at least as close to 20 % as in the release's split
    r_train, r_test = release_split(indices_dir)
    release_report = element_count_report([i for i in r_train if i in cif_elements],
                                          [i for i in r_test if i in cif_elements], cif_elements)
    assert mean_abs_deviation(report, 0.2) <= mean_abs_deviation(release_report, 0.2)


def test_release_split_is_element_balanced(cif_elements, indices_dir):
    train, test = release_split(indices_dir)
    report = element_count_report([i for i in train if i in cif_elements],
                                  [i for i in test if i in cif_elements], cif_elements)
    assert unbalanced_elements(report) == []


# ------------------------------------------------------------------------------------------
# splits.json
# ------------------------------------------------------------------------------------------


def write_split(tmp_path, data):
    p = tmp_path / "splits.json"
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def test_given_split_reads_parts(tmp_path):
    p = write_split(tmp_path, {"train": [1, 2, 3], "val": [4], "test": [5, 6]})
    s = given_split(p, known_ids=range(10))
    assert (s.train, s.val, s.test) == ([1, 2, 3], [4], [5, 6])
    s = given_split(write_split(tmp_path, {"train": ["a"], "test": ["b"]}))
    assert (s.train, s.val, s.test) == (["a"], [], ["b"])
    s = given_split(write_split(tmp_path, {"train": ["a"], "val": ["b"]}))  # a leaderboard's train/val file
    assert (s.train, s.val, s.test) == (["a"], ["b"], [])
    s = given_split(write_split(tmp_path, {"train": [1, "2"], "test": [3]}), known_ids=["1", 2, "3"])
    assert (s.train, s.test) == ([1, "2"], [3])  # compared by text, returned as written


@pytest.mark.parametrize("data, reason", [
    ("{not json", "JSON"),
    ([1, 2], "object"),
    ({"train": [1], "test": [2], "valid": [3]}, "unknown keys"),
    ({"test": [1]}, 'missing "train"'),
    ({"train": [], "test": [2]}, "empty"),
    ({"train": [1, 2], "test": [2]}, '"train" and "test"'),
    ({"train": [1], "val": [3], "test": [3]}, '"val" and "test"'),
    ({"train": [1, 1], "test": [2]}, "repeated"),
    ({"train": [1, "1"], "test": [2]}, "repeated"),  # both name 1.cif
    ({"train": [1], "test": ["1"]}, '"train" and "test"'),
    ({"train": [1.5], "test": [2]}, "integers or strings"),
    ({"train": [1], "test": [99]}, "not in the dataset"),
])
def test_given_split_errors_name_the_file(tmp_path, data, reason):
    p = write_split(tmp_path, data)
    with pytest.raises(InputError, match=re.escape(reason)) as err:
        given_split(p, known_ids=range(10))
    assert str(err.value).startswith(str(p))


def test_subsample_member_share_without_replacement():
    from betenet.data.splits import subsample_member

    ids = [f"m{i}" for i in range(50)]
    m = subsample_member(ids, 3, 0.8)
    assert len(m.train_ids) == 40 and len(set(m.train_ids)) == 40  # no repeats
    assert np.all(m.weights == 1.0) and m.mode == "unique"
    assert sorted(m.train_ids + m.val_ids) == sorted(ids) and not set(m.train_ids) & set(m.val_ids)
    assert subsample_member(ids, 3, 0.8).train_ids == m.train_ids  # the seed decides
    assert subsample_member(ids, 4, 0.8).train_ids != m.train_ids
    assert len(subsample_member(ids[:3], 0, 0.99).val_ids) == 1  # one id always stays out of bag
    with pytest.raises(InputError, match="subsample_fraction"):
        subsample_member(ids, 0, 1.0)
