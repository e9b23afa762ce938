"""The .difypkg: what goes in, and that the unpacked package validates again."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from build_package import PackageError, build, checksum, is_ignored, main, unique_identifier
from conftest import PLUGIN_DIR, Package
from plugin_checks import MAX_PACKAGE_BYTES, validate


def test_package_unpacks_and_validates_again(package: Package) -> None:
    assert package.path.name == "tier_router-0.2.0.difypkg"
    assert package.path.stat().st_size < MAX_PACKAGE_BYTES
    plugin = validate(package.unpacked)
    assert {t.identity.name for t in plugin.providers[0].tools} == {
        "route_request", "check_quality", "record_outcome"}


def test_package_holds_the_plugin_and_no_development_files(package: Package) -> None:
    with zipfile.ZipFile(package.path) as archive:
        names = set(archive.namelist())
    assert {"manifest.yaml", "main.py", "requirements.txt", "README.md", "PRIVACY.md",
            "_assets/icon.svg", "provider/tier_router.yaml", "provider/tier_router.py",
            "tools/route_request.yaml", "tools/route_request.py", "tools/check_quality.yaml",
            "tools/check_quality.py", "tools/record_outcome.yaml", "tools/record_outcome.py",
            "tools/inputs.py", "tier_router_client.py"} <= names
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


def test_builder_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    target = tmp_path / "tier_router-0.2.0.difypkg"
    assert target.is_file()
    assert (PLUGIN_DIR / "manifest.yaml").is_file()
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"plugin_unique_identifier: {unique_identifier(target)}"
    assert unique_identifier(target).startswith("tier-router/tier_router:0.2.0@")


def _zip(path: Path, files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED,
         comment: bytes = b"", date: tuple[int, ...] = (2026, 1, 15, 0, 0, 0)) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=date), data)
        archive.comment = comment
    return path


def test_checksum_depends_on_names_and_contents_only(tmp_path: Path) -> None:
    files = {"manifest.yaml": b"name: x\n", "tools/a.py": b"print(1)\n", "_assets/i.svg": b"<svg/>"}
    base = checksum(_zip(tmp_path / "a.difypkg", files))
    # as the daemon sees it: file order, compression, dates and a signature comment do not count
    same = _zip(tmp_path / "b.difypkg", dict(reversed(list(files.items()))),
                zipfile.ZIP_STORED, b"signature", (2030, 6, 1, 12, 0, 0))
    assert checksum(same) == base and len(base) == 64
    assert checksum(_zip(tmp_path / "c.difypkg", {**files, "tools/a.py": b"print(2)\n"})) != base
    renamed = {("tools/b.py" if n == "tools/a.py" else n): d for n, d in files.items()}
    assert checksum(_zip(tmp_path / "d.difypkg", renamed)) != base
    assert checksum(_zip(tmp_path / "e.difypkg", {**files, "extra": b""})) != base


def test_checksum_refuses_folder_entries(tmp_path: Path) -> None:
    package = tmp_path / "dirs.difypkg"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("tools/", b"")
        archive.writestr("tools/a.py", b"")
    with pytest.raises(PackageError, match="folder entry 'tools/'"):
        checksum(package)


def _plugin_copy(tmp_path: Path) -> Path:
    root = tmp_path / "plugin"
    shutil.copytree(PLUGIN_DIR, root, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    return root


def _names(package: Path) -> set[str]:
    with zipfile.ZipFile(package) as archive:
        return set(archive.namelist())


def test_packages_and_the_output_folder_are_never_packed(tmp_path: Path) -> None:
    root = _plugin_copy(tmp_path)
    (root / "old.difypkg").write_bytes(b"an earlier build")
    (root / "_assets" / "stray.difypkg").write_bytes(b"another")
    out = root / "packages"  # an output folder inside the plugin, not the ignored dist/
    first = build(root, out)
    second = build(root, out)  # the first package now lies in the output folder
    assert first == second
    names = _names(second)
    assert not [n for n in names if n.endswith(".difypkg") or n.startswith("packages/")], names
    assert {"manifest.yaml", "_assets/icon.svg", "tools/route_request.py"} <= names
    beside = build(root, root)  # next to manifest.yaml: neither itself nor the others
    assert beside == root / second.name
    assert _names(build(root, root)) == names


def test_an_output_folder_holding_plugin_files_is_refused(tmp_path: Path) -> None:
    root = _plugin_copy(tmp_path)
    with pytest.raises(PackageError, match=r"holds files that belong in the package "
                                           r"\(tools/"):
        build(root, root / "tools")
    (root / "packages").mkdir()
    (root / "packages" / "notes.txt").write_text("not a package", encoding="utf-8")
    with pytest.raises(PackageError, match=r"\(packages/notes\.txt\)"):
        build(root, root / "packages")
    assert not list(root.rglob("*.difypkg"))
