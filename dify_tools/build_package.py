"""Build the unsigned ``.difypkg`` of this plugin: a zip of the folder, less ``.difyignore``.

    python build_package.py [--out DIR]     # default DIR: dist/

It prints the package's ``plugin_unique_identifier`` (the daemon's name for it, which the
example workflow's ``dependencies`` carries). Never packed: ``*.difypkg`` files (earlier
builds) and, when DIR is inside the plugin, DIR's contents; a DIR inside the plugin that
holds plugin files (``--out tools``) is refused.

Dify installs an unsigned package only when its plugin daemon runs with
``FORCE_VERIFYING_SIGNATURE=false``.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import sys
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent
MAX_BYTES = 50 * 1024 * 1024  # the daemon refuses larger packages


class PackageError(Exception):
    """The package cannot be built as asked."""


def ignore_patterns(root: Path) -> list[str]:
    """The patterns of ``root/.difyignore`` (gitignore-style: ``dir/``, globs, names)."""
    path = root / ".difyignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_ignored(relative: Path, patterns: list[str]) -> bool:
    parts = relative.parts
    for pattern in patterns:
        anchored = pattern.startswith("/")
        pattern = pattern.strip("/") if pattern.endswith("/") else pattern.lstrip("/")
        if "/" in pattern or anchored:  # a path from the root
            if fnmatch.fnmatch(relative.as_posix(), pattern) or any(
                    fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts))):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def package_files(root: Path, out_dir: Path | None = None) -> list[Path]:
    """The files that go into the package, relative to ``root``, sorted.

    Never a ``.difypkg`` (old packages, wherever they lie), nor anything in ``out_dir`` when
    that folder is inside ``root``.
    """
    patterns = ignore_patterns(root)
    root = root.resolve()
    out = out_dir.resolve() if out_dir is not None else None
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if (not path.is_file() or path.suffix == ".difypkg" or is_ignored(relative, patterns)
                or (out is not None and out != root and path.is_relative_to(out))):
            continue
        files.append(relative)
    return sorted(files)


def check_out_dir(root: Path, out_dir: Path) -> None:
    """Refuse an output folder inside the plugin that holds files of the plugin itself.

    Its contents are left out of the package, so ``--out tools`` would drop the tools.
    """
    root, out = root.resolve(), out_dir.resolve()
    if out == root or not out.is_relative_to(root):
        return
    held = sorted(set(package_files(root)) - set(package_files(root, out)))
    if held:
        names = ", ".join(p.as_posix() for p in held[:3]) + (", ..." if len(held) > 3 else "")
        raise PackageError(f"the output folder {out} is inside the plugin and holds files "
                           f"that belong in the package ({names}); write to dist/ or to a "
                           "folder outside the plugin")


def build(root: Path, out_dir: Path) -> Path:
    """Write ``<name>-<version>.difypkg`` into ``out_dir``; return its path."""
    manifest = yaml.safe_load((root / "manifest.yaml").read_text(encoding="utf-8"))
    target = out_dir / f"{manifest['name']}-{manifest['version']}.difypkg"
    check_out_dir(root, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = package_files(root, out_dir)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            archive.write(root / relative, relative.as_posix())
    size = target.stat().st_size
    if size > MAX_BYTES:
        target.unlink()
        raise PackageError(f"the package would be {size} bytes; Dify accepts at most {MAX_BYTES}")
    return target


def checksum(package: Path) -> str:
    """The checksum Dify's plugin daemon gives a package, as its decoder computes it.

    SHA-256 over, for each file name in sorted order, SHA-256(name) + SHA-256(contents): it
    depends on the files alone, not on zip metadata (order, dates, compression, signature).
    Checked against a published package: langgenius/agent 0.0.14 gives the checksum of its
    marketplace identifier.
    """
    digests: dict[str, bytes] = {}
    with zipfile.ZipFile(package) as archive:
        for info in archive.infolist():
            if info.is_dir():
                raise PackageError(f"{package}: has a folder entry {info.filename!r}; Dify's "
                                   "plugin daemon reads every entry as a file")
            digests[info.filename] = hashlib.sha256(archive.read(info)).digest()
    data = b"".join(hashlib.sha256(name.encode()).digest() + digests[name]
                    for name in sorted(digests))
    return hashlib.sha256(data).hexdigest()


def unique_identifier(package: Path) -> str:
    """``author/name:version@checksum``: how Dify names an installed package (DSL dependencies)."""
    with zipfile.ZipFile(package) as archive:
        manifest = yaml.safe_load(archive.read("manifest.yaml"))
    return f"{manifest['author']}/{manifest['name']}:{manifest['version']}@{checksum(package)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the plugin's unsigned .difypkg.")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder")
    args = parser.parse_args(argv)
    try:
        target = build(ROOT, args.out)
    except (PackageError, OSError) as exc:
        print(f"build_package: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    print(f"plugin_unique_identifier: {unique_identifier(target)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
