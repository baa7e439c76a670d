"""The house holds its shape: imports point down the layers, and no library function imports facexai locally.

Layers, bottom up (a module may import its own layer's units and those below; training and explain are
siblings that never import each other; the units of one layer import each other without a cycle):

    errors config emotions facs io provenance metrics models parallel
    data faces
    runs
    training explain
    report
    cli __main__
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "facexai"
LAYERS = [
    {"errors", "config", "emotions", "facs", "catalogue", "io", "provenance", "metrics", "models", "parallel"},
    {"data", "faces"},
    {"runs"},
    {"training", "explain"},
    {"report"},
    {"cli", "__main__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
SIBLINGS = {frozenset({"training", "explain"})}
TOP = {"cli", "__main__", "__init__"}  # may import lazily, for a fast --help and `import facexai`


def unit_of(path: Path) -> str:
    """facexai/explain/base.py -> "explain"; facexai/runs.py -> "runs"."""
    part = path.relative_to(PACKAGE).parts[0]
    return part.removesuffix(".py")


def facexai_imports(tree: ast.AST) -> list[tuple[str, ast.AST, bool]]:
    """(imported unit, node, at module level) for every `import facexai.x` / `from facexai.x import ...`."""
    out = []
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "facexai":
            parts = node.module.split(".")
            names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("facexai.")]
        out += [(n, node, id(node) in top_level) for n in names]
    return out


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = unit_of(path)
        if unit == "__init__":
            continue
        for imported, _, _ in facexai_imports(ast.parse(path.read_text())):
            if imported != unit:
                edges.setdefault(unit, set()).add(imported)
    return edges


def test_every_unit_has_a_layer():
    units = {unit_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units <= set(RANK), units - set(RANK)


def test_imports_point_down_the_layers():
    wrong = []
    for unit, imported in graph().items():
        for other in imported:
            if RANK[other] > RANK[unit] or frozenset({unit, other}) in SIBLINGS:
                wrong.append(f"{unit} -> {other}")
    assert not wrong, wrong


def test_units_of_one_layer_import_each_other_without_a_cycle():
    edges = graph()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    cycles = sorted(u for u in edges if reaches(u, u, {u}))
    assert not cycles, cycles


def test_no_library_function_imports_facexai_inside_a_function():
    local = []
    for path in PACKAGE.rglob("*.py"):
        if unit_of(path) in TOP:
            continue
        for imported, node, at_top in facexai_imports(ast.parse(path.read_text())):
            if not at_top:
                local.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {imported}")
    assert not local, local


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The test above can fail: a function-level import and an upward import are both found."""
    tree = ast.parse("from facexai.io import files\n\ndef f():\n    from facexai.report import report\n")
    found = facexai_imports(tree)
    assert [(u, top) for u, _, top in found] == [("io", True), ("report", False)]
    assert RANK["report"] > RANK["data"]
