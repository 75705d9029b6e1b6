"""The release files and the packaging declarations: LICENSE, CITATION.cff, CHANGELOG.md, one version.

Fast and offline: nothing is built here (.ci/run's release step builds the sdist and the wheel, installs
the wheel outside the checkout and runs it). These tests check the declarations that step relies on.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import physamp

ROOT = Path(__file__).resolve().parents[1]

# SHA-256 of the Apache License 2.0 as the ASF publishes it (LICENSE-2.0.txt, with its appendix);
# the same bytes as Debian's /usr/share/common-licenses/Apache-2.0
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _citation() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


# --- LICENSE ---------------------------------------------------------------------------------------


def test_license_is_the_apache_2_text():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    sections = [
        "1. Definitions.",
        "2. Grant of Copyright License.",
        "3. Grant of Patent License.",
        "4. Redistribution.",
        "5. Submission of Contributions.",
        "6. Trademarks.",
        "7. Disclaimer of Warranty.",
        "8. Limitation of Liability.",
        "9. Accepting Warranty or Additional Liability.",
    ]
    positions = [text.index(s) for s in sections]
    assert positions == sorted(positions), "the nine sections are out of order"
    assert "END OF TERMS AND CONDITIONS" in text
    assert 'distributed under the License is distributed on an "AS IS" BASIS' in text
    digest = hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest()
    assert digest == APACHE_2_SHA256, "LICENSE differs from the published Apache-2.0 text"


def test_pyproject_names_the_licence_file():
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert "LICENSE" in project["license-files"]


# --- the version -----------------------------------------------------------------------------------


def test_the_version_has_one_source():
    config = _pyproject()
    assert "version" not in config["project"], "pyproject must not type the version a second time"
    assert "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "physamp.__version__"}
    text = (ROOT / "physamp" / "__init__.py").read_text(encoding="utf-8")
    # setuptools reads the attribute statically: it must stay a plain string literal
    assert re.search(r'^__version__ = "[^"]+"$', text, flags=re.M)


def test_version_agrees_with_the_installed_metadata_and_the_cli(capsys):
    from physamp.cli import main

    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|(a|b|rc)\d+)?", physamp.__version__)
    assert importlib.metadata.version("physamp") == physamp.__version__, (
        "the installed metadata is stale: reinstall (pip install -e .)"
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"physamp {physamp.__version__}"
    assert _citation()["version"] == physamp.__version__


# --- CITATION.cff ----------------------------------------------------------------------------------


def test_citation_file_is_cff_1_2_0_with_the_four_references():
    cff = _citation()
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):  # the keys CFF 1.2.0 requires
        assert cff.get(key), key
    assert cff["title"] == "physamp" and cff["type"] == "software"
    assert cff["license"] == "Apache-2.0"
    refs = {r["title"]: r for r in cff["references"]}
    assert len(refs) == 4
    thesis = refs["Representation Learning for Visual Data"]
    assert thesis["type"] == "thesis" and thesis["year"] == 2018
    assert thesis["institution"]["name"] == "Université de Montréal"
    papers = {
        "On the Challenges of Physical Implementations of RBMs": (
            2014,
            ["Dumoulin", "Goodfellow", "Courville", "Bengio"],
        ),
        "Adversarially Learned Inference": (
            2017,
            ["Dumoulin", "Belghazi", "Poole", "Mastropietro", "Lamb", "Arjovsky", "Courville"],
        ),
        "A Learned Representation for Artistic Style": (2017, ["Dumoulin", "Shlens", "Kudlur"]),
    }
    for title, (year, authors) in papers.items():
        ref = refs[title]
        assert ref["type"] == "conference-paper" and ref["year"] == year, title
        assert [a["family-names"] for a in ref["authors"]] == authors, title
    assert thesis["authors"] == [{"family-names": "Dumoulin", "given-names": "Vincent"}]


# --- CHANGELOG.md ----------------------------------------------------------------------------------


def test_changelog_has_an_unreleased_section_and_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings and headings[0].strip("[]") == "Unreleased", headings[:1]
    assert any(
        h.strip("[]").startswith(f"{physamp.__version__} ") or h == physamp.__version__ for h in headings
    ), f"CHANGELOG.md has no section for version {physamp.__version__}"


# --- what the wheel and the sdist carry ------------------------------------------------------------


def _tracked(path: str) -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "-z", path], cwd=ROOT, capture_output=True, check=True, timeout=30
    ).stdout
    return [p for p in out.decode().split("\0") if p]


def test_package_data_covers_every_tracked_non_python_file():
    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["physamp"]
    declared = {
        p.relative_to(ROOT).as_posix() for pattern in patterns for p in (ROOT / "physamp").glob(pattern)
    }
    needed = [p for p in _tracked("physamp") if not p.endswith(".py")]
    assert "physamp/data/mnist_slice.npz" in needed and "physamp/py.typed" in needed
    missing = sorted(set(needed) - declared)
    assert not missing, f"add these to [tool.setuptools.package-data] in pyproject.toml: {missing}"


def test_only_the_physamp_packages_go_into_the_wheel():
    setuptools = pytest.importorskip("setuptools")
    find = _pyproject()["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(where=str(ROOT), include=find["include"])
    assert "physamp" in packages
    assert all(p == "physamp" or p.startswith("physamp.") for p in packages), packages


def test_sdist_carries_the_release_files():
    manifest = (ROOT / "MANIFEST.in").read_text(encoding="utf-8").split()
    for name in ("LICENSE", "README.md", "CHANGELOG.md", "CITATION.cff"):
        assert name in manifest and (ROOT / name).is_file(), name
