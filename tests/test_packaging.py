"""The configuration ships with the package: conf/ is the package data ``betenet.conf`` (one tree,
mapped by pyproject's package-dir), found through importlib.resources, and a wheel built from the
source tree carries every file of it."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from setuptools import find_packages

from betenet.config import CONF_DIR, CONF_PACKAGE

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_is_listed_and_conf_is_mapped():
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert setuptools["package-dir"] == {CONF_PACKAGE: "conf"}
    assert set(setuptools["packages"]) == set(find_packages(str(ROOT), include=["betenet*"])) | {CONF_PACKAGE}


def test_the_configuration_is_found_through_importlib_resources():
    assert CONF_DIR == Path(str(resources.files(CONF_PACKAGE)))
    assert (CONF_DIR / "config.yaml").is_file() and (CONF_DIR / "data" / "base.yaml").is_file()
    assert CONF_DIR.resolve() == (ROOT / "conf").resolve()  # the checkout's own conf/ (editable install)


@pytest.mark.slow
def test_a_wheel_carries_every_config_file(tmp_path):
    src = tmp_path / "src"  # what a build reads, copied: building in the checkout would leave build/ there
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "betenet", src / "betenet", ignore=ignore)
    shutil.copytree(ROOT / "conf", src / "conf", ignore=ignore)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src),
                          "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    if res.returncode != 0 and "No module named" in res.stderr:
        pytest.skip(f"cannot build a wheel here: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, res.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("betenet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"betenet/conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")}
    assert shipped and shipped <= names, sorted(shipped - names)
    assert "betenet/train.py" in names and "betenet/cli/__init__.py" in names
    shipped_ensembles = {f"betenet/{p.relative_to(ROOT / 'betenet').as_posix()}"
                         for p in (ROOT / "betenet" / "shipped").rglob("*") if p.is_file()}
    assert shipped_ensembles and shipped_ensembles <= names, sorted(shipped_ensembles - names)
