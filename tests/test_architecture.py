"""The house as docs/ARCHITECTURE.md draws it: hfrepro's import graph has no loop, and no module imports from a
layer above its own. Every import counts, also those inside functions."""

import ast
import re
from pathlib import Path

from tests.conftest import REPO

PKG = REPO / "hfrepro"


def layers() -> list[tuple[int, str, list[str]]]:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = re.search(r"```layers\n(.*?)```", text, flags=re.S).group(1)
    out = []
    for line in block.strip().splitlines():
        head, mods = line.split(":", 1)
        num, name = head.split(" ", 1)
        out.append((int(num), name.strip(), mods.split()))
    return out


def module_files() -> dict[str, Path]:
    files = {}
    for p in list(PKG.rglob("*.py")) + list((REPO / "recipes").glob("*.py")):
        if p.is_relative_to(REPO / "recipes"):
            parts = ["hfrepro", "recipes", *p.relative_to(REPO / "recipes").with_suffix("").parts]
        else:
            parts = list(p.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = p
    return files


def imports(path: Path, mod: str) -> set[str]:
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "hfrepro"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            if base.split(".")[0] == "hfrepro":
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}
    return out


def graph() -> dict[str, set[str]]:
    files = module_files()
    return {m: {t for t in imports(p, m) if t in files and t != m} for m, p in files.items()}


def layer_of(mod: str, table) -> int | None:
    for num, _, mods in table:
        if mod in mods:
            return num
    best = None
    for num, _, mods in table:
        for pat in mods:
            if pat.endswith(".*") and (mod == pat[:-2] or mod.startswith(pat[:-1])):
                if best is None or len(pat) > best[1]:
                    best = (num, len(pat))
    return best[0] if best else None


def test_every_module_has_a_layer():
    table = layers()
    missing = sorted(m for m in module_files() if layer_of(m, table) is None)
    assert not missing, f"modules without a layer in docs/ARCHITECTURE.md: {missing}"


def upward(g: dict[str, set[str]], table) -> list[str]:
    names = {num: name for num, name, _ in table}
    bad = []
    for mod, targets in g.items():
        lm = layer_of(mod, table)
        for t in targets:
            lt = layer_of(t, table)
            if lt is not None and lm is not None and lt > lm:
                bad.append(f"{mod} ({names[lm]}) imports {t} ({names[lt]})")
    return sorted(bad)


def loops(g: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(g.get(v, ())):
            if state.get(w) == 1:
                found.append(" -> ".join(stack[stack.index(w):] + [w]))
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for v in sorted(g):
        if v not in state:
            visit(v)
    return found


def test_no_import_runs_up_the_layers():
    bad = upward(graph(), layers())
    assert not bad, "imports running up the layers:\n" + "\n".join(bad)


def test_no_import_loop():
    found = loops(graph())
    assert not found, "import loops:\n" + "\n".join(found)


def test_the_checks_can_fail():
    """A planted loop and a planted upward import are found; a stage CLI sits above its stage."""
    table = layers()
    assert loops({"hfrepro.a": {"hfrepro.b"}, "hfrepro.b": {"hfrepro.c"}, "hfrepro.c": {"hfrepro.a"}})
    assert not loops({"hfrepro.a": {"hfrepro.b"}, "hfrepro.b": set()})
    assert upward({"hfrepro.runtime": {"hfrepro.hub"}}, table) == [
        "hfrepro.runtime (runtime) imports hfrepro.hub (top)"]
    assert layer_of("hfrepro.lm.cli", table) > layer_of("hfrepro.lm.clm", table)


def test_no_budget_numbers_in_python():
    hits = [str(p.relative_to(REPO)) for p in PKG.rglob("*.py") if re.search(r"\bBUDGETS\b",
                                                                             p.read_text(encoding="utf-8"))]
    assert not hits, f"budgets belong in recipes/configs/<recipe>/<budget>.yaml: {hits}"


def test_no_function_over_80_lines():
    long = []
    for p in list(PKG.rglob("*.py")) + list((REPO / "recipes").glob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long.append(f"{p.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "\n".join(long)


def test_ruff_is_clean():
    """The house style (ruff.toml): unused imports, import order, line length."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        import pytest
        pytest.skip("ruff is not installed (it is in the dev extras)")
    r = subprocess.run([ruff, "check", "hfrepro", "recipes", "tests", "bench", "scripts"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
