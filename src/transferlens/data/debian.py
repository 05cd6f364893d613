"""The Debian packages behind the built-in data sources (and the headless browser of the report test), where
their files live, and how to install them.

``python -m transferlens.data.debian install`` (run by ``scripts/setup.sh``) installs what is missing:
as root with ``apt-get``; otherwise it prints the packages and the command to run. From ``opencv-doc``
(95 MB of documentation) only ``digits.png`` is needed, so that file alone is extracted from the
downloaded package into ``$TRANSFERLENS_HOME/data`` and the package is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..paths import data_dir

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
OPENCV_DIGITS = Path("/usr/share/doc/opencv-doc/examples/data/digits.png")
_DIGITS_IN_DEB = "./usr/share/doc/opencv-doc/examples/data/digits.png"


@dataclass(frozen=True)
class DebianData:
    source: str  # the builtin: name
    package: str
    probe: Path  # a file whose presence means the data is there


REQUIREMENTS = (
    DebianData("fashion-mnist", "dataset-fashion-mnist", FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz"),
    DebianData("fortunes", "fortunes", FORTUNES_DIR / "computers"),
    DebianData("fortunes", "fortunes-min", FORTUNES_DIR / "fortunes"),
    DebianData("glyphs", "fonts-dejavu-core", Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")),
    DebianData("glyphs", "fonts-dejavu-extra", Path("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf")),
)
#: Not data: headless Chromium, in which tests/report opens the HTML report (those tests skip without it).
#: Optional: a failed install is a note, not a set-up error (e.g. Ubuntu ships Chromium as a snap).
BROWSER = DebianData("report-browser", "chromium", Path("/usr/bin/chromium"))


def env_override(name: str) -> Path | None:
    """``TRANSFERLENS_<NAME>_DIR`` lets users without Debian point at their own copy of the files."""
    value = os.environ.get(f"TRANSFERLENS_{name.upper().replace('-', '_')}_DIR")
    return Path(value) if value else None


def fashion_mnist_dir() -> Path:
    d = env_override("fashion-mnist") or FASHION_MNIST_DIR
    if not (d / "t10k-labels-idx1-ubyte.gz").exists():
        raise DataError(
            "builtin:fashion-mnist needs the Debian package 'dataset-fashion-mnist' "
            "(run `bash scripts/setup.sh`, or `sudo apt-get install dataset-fashion-mnist`), "
            "or set TRANSFERLENS_FASHION_MNIST_DIR to a folder with the four *-ubyte.gz IDX files."
        )
    return d


def fortunes_dir() -> Path:
    d = env_override("fortunes") or FORTUNES_DIR
    if not d.is_dir() or not any(d.iterdir()):
        raise DataError(
            "builtin:fortunes needs the Debian packages 'fortunes' and 'fortunes-min' "
            "(run `bash scripts/setup.sh`, or `sudo apt-get install fortunes fortunes-min`), "
            "or set TRANSFERLENS_FORTUNES_DIR to a folder of strfile-format text files."
        )
    return d


def digits_png() -> Path:
    default_home_copy = Path.home() / ".cache" / "transferlens" / "data" / "digits.png"
    for candidate in (data_dir() / "digits.png", default_home_copy, OPENCV_DIGITS):
        if candidate.exists():
            return candidate
    raise DataError(
        "builtin:digits needs digits.png from the Debian package 'opencv-doc' "
        "(run `bash scripts/setup.sh`, which extracts just that file; or `sudo apt-get install opencv-doc`)."
    )


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _missing_packages() -> list[str]:
    return sorted({r.package for r in REQUIREMENTS if not r.probe.exists()})


def _apt(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True)


def _extract_digits_png() -> Path:
    """Download opencv-doc's .deb and extract only digits.png (works without root)."""
    dest = data_dir() / "digits.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, capture_output=True, text=True)
        if result.returncode != 0 and _is_root():
            _apt("update", "-q")
            result = subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("opencv-doc_*.deb"))
        if result.returncode != 0 or not debs:
            raise DataError(f"could not download the Debian package opencv-doc: {result.stderr.strip()[-300:]}")
        partial = dest.with_suffix(".png.part")
        with open(partial, "wb") as out:
            deb = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE)
            tar = subprocess.run(["tar", "-xO", _DIGITS_IN_DEB], stdin=deb.stdout, stdout=out)
            deb.wait()
        if tar.returncode != 0 or partial.stat().st_size == 0:
            partial.unlink(missing_ok=True)
            raise DataError("opencv-doc was downloaded but digits.png could not be extracted from it.")
        os.replace(partial, dest)
    return dest


def _install_browser(have_apt: bool) -> None:
    """Install Debian's chromium as root when no Chromium is on PATH; only notes on failure."""
    if BROWSER.probe.exists() or any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        return
    if not have_apt or not _is_root():
        print("[setup] note: no headless Chromium, so the report's browser test will be skipped "
              "(install it with: sudo apt-get install chromium).")
        return
    print("[setup] installing Debian package: chromium (the report's browser test opens the report in it)")
    result = _apt("install", "-y", "-q", BROWSER.package)
    if result.returncode != 0:
        _apt("update", "-q")
        result = _apt("install", "-y", "-q", BROWSER.package)
    if result.returncode != 0:
        print(f"[setup] note: apt-get install chromium failed, so the report's browser test will be skipped:\n"
              f"{result.stderr[-400:]}")


def install() -> int:
    """Install the missing Debian data; return a process exit code (0 also when only advice was printed)."""
    missing = _missing_packages()
    have_apt = shutil.which("apt-get") is not None
    if missing:
        if not have_apt:
            print(
                f"[setup] note: no apt-get here; the built-in sources that need the Debian packages "
                f"{', '.join(missing)} will say so. Point TRANSFERLENS_FASHION_MNIST_DIR / TRANSFERLENS_FORTUNES_DIR "
                "at your own copies, or use imagefolder:/csv:/npz: sources."
            )
        elif not _is_root():
            print(
                f"[setup] note: not root, so the Debian packages {', '.join(missing)} were not installed. "
                f"Run: sudo apt-get install {' '.join(missing)}"
            )
        else:
            print(f"[setup] installing Debian packages: {', '.join(missing)}")
            result = _apt("install", "-y", "-q", *missing)
            if result.returncode != 0:
                _apt("update", "-q")
                result = _apt("install", "-y", "-q", *missing)
            if result.returncode != 0:
                print(f"[setup] error: apt-get install {' '.join(missing)} failed:\n{result.stderr[-800:]}", file=sys.stderr)
                return 1
    _install_browser(have_apt)
    try:
        digits_png()
    except DataError:
        if not have_apt:
            print("[setup] note: builtin:digits needs digits.png from Debian's opencv-doc; no apt-get here.")
        else:
            print("[setup] extracting digits.png from Debian's opencv-doc")
            try:
                _extract_digits_png()
            except DataError as exc:
                print(f"[setup] error: {exc}", file=sys.stderr)
                return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["install"]:
        return install()
    print("usage: python -m transferlens.data.debian install", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
