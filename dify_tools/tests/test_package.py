"""The .difypkg: what goes in, and that the unpacked package validates again."""

from __future__ import annotations

import zipfile
from pathlib import Path

from build_package import is_ignored, main
from conftest import PLUGIN_DIR, Package
from plugin_checks import MAX_PACKAGE_BYTES, validate


def test_package_unpacks_and_validates_again(package: Package) -> None:
    assert package.path.name == "tier_router-0.1.0.difypkg"
    assert package.path.stat().st_size < MAX_PACKAGE_BYTES
    plugin = validate(package.unpacked)
    assert {t.identity.name for t in plugin.providers[0].tools} == {"route_request",
                                                                    "check_quality"}


def test_package_holds_the_plugin_and_no_development_files(package: Package) -> None:
    with zipfile.ZipFile(package.path) as archive:
        names = set(archive.namelist())
    assert {"manifest.yaml", "main.py", "requirements.txt", "README.md", "PRIVACY.md",
            "_assets/icon.svg", "provider/tier_router.yaml", "provider/tier_router.py",
            "tools/route_request.yaml", "tools/route_request.py", "tools/check_quality.yaml",
            "tools/check_quality.py", "tools/inputs.py", "tier_router_client.py"} <= names
    assert all(not n.startswith(("tests/", "examples/", "dist/")) for n in names), names
    assert not {"ci.sh", "build_package.py", "openapi.json", "pytest.ini"} & names
    assert all("__pycache__" not in n and not n.startswith("/") for n in names)


def test_ignore_patterns_follow_gitignore_forms() -> None:
    patterns = ["tests/", "*.pyc", "/dist", "docs/*.md"]
    assert is_ignored(Path("tests/test_x.py"), patterns)
    assert is_ignored(Path("tools/__pycache__/a.pyc"), patterns)
    assert is_ignored(Path("dist/x.difypkg"), patterns)
    assert is_ignored(Path("docs/a.md"), patterns)
    assert not is_ignored(Path("tools/route_request.py"), patterns)
    assert not is_ignored(Path("docs/a.txt"), patterns)


def test_builder_command(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "tier_router-0.1.0.difypkg").is_file()
    assert (PLUGIN_DIR / "manifest.yaml").is_file()
