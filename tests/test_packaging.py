"""The installed package is whole: the recipes and their budgets ship inside it (as `hfrepro.recipes`), so every
command works from any directory with no checkout around."""

import os
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pkg")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp / "dist"), str(REPO)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("hfrepro-*.whl")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp / "site"),
                        str(wheel)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return wheel, tmp / "site"


def test_wheel_carries_recipes_configs_and_cards(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("hfrepro/recipes/clm.py", "hfrepro/recipes/configs/clm/default.yaml",
              "hfrepro/recipes/configs/word2vec/korean/tiny.yaml", "hfrepro/recipes/accelerate/cpu_2proc.yaml",
              "hfrepro/data_cards/shakespeare.md", "hfrepro/fewshot/tasks/uppercase.yaml"):
        assert f in names, f


def test_commands_work_from_any_directory(installed, tmp_path):
    _, site = installed
    env = {**os.environ, "PYTHONPATH": str(site)}  # the installed copy, not the checkout
    code = "import hfrepro, sys; sys.argv = ['hfrepro', 'clm', '--help']; print(hfrepro.__file__, flush=True); " \
           "from hfrepro.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith(str(site)) and "--max_steps" in r.stdout and "--budget" in r.stdout
