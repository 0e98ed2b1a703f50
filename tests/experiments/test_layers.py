"""The harness is layered: every module imports only modules of a lower layer (no circles)."""
from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "experiments"

# Entry points on top, then sweep orchestration and the range test's job (both build on the
# runner), then the job runner and the comparison report, then a run's record (names, tags,
# inputs, folder claim), then store I/O (with what it needs below it) and figures.
LAYERS = {
    5: {"train", "reproduce", "report", "resend", "server", "ui_check", "lr_find"},
    4: {"sweep", "lr_find_run"},
    3: {"runner", "comparison"},
    2: {"record", "resume"},
    1: {"unsent", "mlflow_model", "entry", "compare_plots", "plots"},
    0: {"tracking", "config", "figure_kit", "forked", "heap", "paired", "boundary", "signals",
        "pyfunc_model", "serving", "lr_find_plot", "__init__"},
}
RANK = {module: rank for rank, modules in LAYERS.items() for module in modules}


def harness_imports(path: Path) -> set[str]:
    """Names of experiments.* modules a file imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "experiments":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("experiments."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("experiments."))
    return found


def test_every_harness_module_has_a_layer():
    modules = {p.stem for p in HARNESS.glob("*.py")}
    assert modules <= set(RANK), f"modules without a layer: {sorted(modules - set(RANK))}"


def test_imports_point_downward_only():
    upward = []
    for path in sorted(HARNESS.glob("*.py")):
        for imported in harness_imports(path):
            if RANK[imported] >= RANK[path.stem]:
                upward.append(f"{path.stem} (layer {RANK[path.stem]}) imports {imported} "
                              f"(layer {RANK[imported]})")
    assert not upward, upward
