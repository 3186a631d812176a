"""experiments/paper_results.py end to end on the tiny demo sweeps (CSO and CPD, two members each):
Table I, Fig. 4 and Fig. 5 are written and agree with `betenet evaluate` / `betenet screen`."""

import importlib.util
import json
from pathlib import Path

import pytest
from _demo_ensemble import demo_ensembles

from betenet.cli import main as betenet

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "paper_results.py"


pytestmark = pytest.mark.usefixtures("one_thread")


def load_script():
    spec = importlib.util.spec_from_file_location("paper_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_results_on_demo_sweeps(tmp_path, capsys):
    demo = demo_ensembles()
    out = tmp_path / "paper"
    summary = load_script().main(["--sweep", f"CSO={demo.sweep('cso')}", "--sweep", f"CPD={demo.sweep('cpd')}",
                                  "--top-k", "2", "--recall", "1.0", "--out", str(out)])
    assert summary["stage1"] == "CSO" and summary["stage2"] == "CPD"
    for name in ("table1.md", "table1.json", "fig4_parity.png", "fig4_best.png", "fig4_worst.png",
                 "fig4_per_element.png", "fig5/pr_curves.png", "fig5/screening.json", "summary.json",
                 "models/CSO/table1.json", "models/CPD/parity.png"):
        assert (out / name).exists(), name
    md = (out / "table1.md").read_text()
    assert "| CSO, synthetic demo | R² |" in md and "| CPD, synthetic demo | R² |" in md
    table = json.loads((out / "table1.json").read_text())

    # the CSO rows equal `betenet evaluate` on the same ensemble (same test split, same materials)
    ev = tmp_path / "evaluate"
    assert betenet(["evaluate", "--ensemble", str(demo.sweep("cso")), "--out", str(ev)]) == 0
    alone = json.loads((ev / "table1.json").read_text())
    assert table["n"] == alone["n"]
    for prop, metrics in alone["metrics"].items():
        for stat in ("r2", "mae", "rmse"):
            assert table["models"]["CSO, synthetic demo"][prop][stat] == pytest.approx(metrics[stat], rel=1e-9)

    # Fig. 5 equals `betenet screen` with the same two stages
    sc = tmp_path / "screen"
    assert betenet(["screen", "--ensemble", str(demo.sweep("cso")), "--ensemble-stage2", str(demo.sweep("cpd")),
                    "--recall", "1.0", "--out", str(sc)]) == 0
    capsys.readouterr()
    fig5 = json.loads((out / "fig5" / "screening.json").read_text())
    screen = json.loads((sc / "screening.json").read_text())
    assert fig5["models"]["stage1"]["average_precision"] == screen["models"]["stage1"]["average_precision"]
    assert fig5["two_stage"]["ap"] == screen["two_stage"]["ap"]


def test_paper_results_rejects_bad_sweep_argument(tmp_path):
    from betenet.errors import InputError

    with pytest.raises(InputError, match="NAME=DIR"):
        load_script().main(["--sweep", "no-equals-sign", "--out", str(tmp_path)])
