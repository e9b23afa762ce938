"""Build the unsigned ``.difypkg`` of this plugin: a zip of the folder, less ``.difyignore``.

    python build_package.py [--out DIR]     # default DIR: dist/

Dify installs an unsigned package only when its plugin daemon runs with
``FORCE_VERIFYING_SIGNATURE=false``.
"""

from __future__ import annotations

import argparse
import fnmatch
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


def package_files(root: Path) -> list[Path]:
    """The files that go into the package, relative to ``root``, sorted."""
    patterns = ignore_patterns(root)
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and not is_ignored(p.relative_to(root), patterns))


def build(root: Path, out_dir: Path) -> Path:
    """Write ``<name>-<version>.difypkg`` into ``out_dir``; return its path."""
    manifest = yaml.safe_load((root / "manifest.yaml").read_text(encoding="utf-8"))
    target = out_dir / f"{manifest['name']}-{manifest['version']}.difypkg"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = package_files(root)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            archive.write(root / relative, relative.as_posix())
    size = target.stat().st_size
    if size > MAX_BYTES:
        target.unlink()
        raise PackageError(f"the package would be {size} bytes; Dify accepts at most {MAX_BYTES}")
    return target


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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
