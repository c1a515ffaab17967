"""Dependencies as a library states them (issue 19): ranges in pyproject.toml, the exact tested versions in
constraints.txt (what scripts/setup.sh installs), and installing hfrepro into an environment that already holds
other in-range versions of transformers and datasets changes none of them."""

import ast
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import PY, REPO

# import name -> distribution name, where they differ
IMPORT_NAMES = {"yaml": "pyyaml", "sklearn": "scikit-learn", "huggingface_hub": "huggingface-hub"}


def requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(d) for d in deps]


def constraints() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version
    return out


def test_the_package_states_ranges_not_pins():
    for r in requirements() + requirements("dev"):
        assert not any(s.operator in ("==", "===") for s in r.specifier), f"{r}: a pin belongs in constraints.txt"
        assert r.specifier, f"{r}: say which versions are supported"


def test_the_tested_versions_lie_inside_the_ranges():
    pins = constraints()
    for r in requirements() + requirements("dev"):
        name = canonicalize_name(r.name)
        assert name in pins, f"{r.name} is not pinned in constraints.txt"
        assert r.specifier.contains(pins[name], prereleases=True), f"constraints.txt {name}=={pins[name]} vs {r}"
    assert pins["torch"] == "2.13.0"  # setup.sh installs exactly this one first: the CPU wheel


def test_every_imported_library_is_a_dependency():
    declared = {canonicalize_name(r.name) for r in requirements() + requirements("dev")}
    found = set()
    files = list((REPO / "hfrepro").rglob("*.py")) + list((REPO / "recipes").glob("*.py"))
    for p in files:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    third = {m for m in found if m not in sys.stdlib_module_names and m != "hfrepro"}
    missing = sorted(m for m in third if canonicalize_name(IMPORT_NAMES.get(m, m)) not in declared)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_setup_installs_from_the_constraints():
    text = (REPO / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt" in text and 'pin torch' in text
    assert text.index('$(pin torch)"') < text.index("-c constraints.txt -e")  # torch's CPU build first


# --- installing into an environment that already has the stack --------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                        str(REPO)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (w,) = out.glob("hfrepro-*.whl")
    return w


def _env_with(tmp: Path, versions: dict[str, str]) -> Path:
    """A fresh venv whose site-packages holds distributions at `versions` (metadata only: what pip's resolver
    reads to decide what to install or change)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True, timeout=300)
    (site,) = (tmp / "venv" / "lib").glob("python*/site-packages")
    for name, version in versions.items():
        d = site / f"{name.replace('-', '_')}-{version}.dist-info"
        d.mkdir()
        (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (d / "INSTALLER").write_text("pip\n")
    return tmp / "venv" / "bin" / "python"


def _dry_run(python: Path, wheel: Path, tmp: Path) -> tuple[int, dict, str]:
    report = tmp / "report.json"
    r = subprocess.run([PY, "-m", "pip", "--python", str(python), "install", "--dry-run", "--no-index",
                        "--report", str(report), "--quiet", str(wheel)], capture_output=True, text=True, timeout=600)
    return r.returncode, (json.loads(report.read_text()) if report.is_file() else {}), r.stderr


@pytest.mark.integration
def test_installs_beside_other_in_range_versions_without_changing_them(wheel, tmp_path):
    versions = {canonicalize_name(r.name): constraints()[canonicalize_name(r.name)] for r in requirements()}
    versions.update({"transformers": "5.24.0", "datasets": "5.1.0"})  # not the tested ones, but in range
    python = _env_with(tmp_path, versions)
    rc, report, err = _dry_run(python, wheel, tmp_path)
    assert rc == 0, err[-3000:]
    assert [i["metadata"]["name"] for i in report["install"]] == ["hfrepro"]  # nothing else installed or changed


@pytest.mark.integration
def test_an_out_of_range_transformers_is_not_accepted(wheel, tmp_path):
    """The control: with transformers 4.x in the environment the same install would have to change it."""
    versions = {canonicalize_name(r.name): constraints()[canonicalize_name(r.name)] for r in requirements()}
    versions["transformers"] = "4.57.1"
    rc, report, err = _dry_run(_env_with(tmp_path, versions), wheel, tmp_path)
    assert rc != 0 and "transformers" in err


@pytest.mark.integration
def test_the_wheel_ships_the_metric_modules(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"hfrepro/metrics/bleu/bleu.py", "hfrepro/metrics/perplexity/perplexity.py",
            "hfrepro/automodels.py"} <= names
