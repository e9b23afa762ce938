"""Reading rows of data files: the files a path names, and CSV rows, for every loader.

Labelled examples (:mod:`.dataset`) and outcome records (:mod:`.outcome_records`) read their
files through here, so both treat files alike:

- a path is a file, or a folder: every ``*.jsonl`` and ``*.csv`` directly in it, sorted by name;
- a CSV's delimiter, ``,`` ``;`` or tab, is the one its header line holds most (``.tsv``: tab);
- a CSV row with bytes that are not UTF-8 is a bad row with its line, as a JSONL line is, not
  the end of the file; so is a row with more fields than the header (a comma in an unquoted
  prompt: it would otherwise shift a word into the tier column).

Bad rows come back as a :class:`ValueError` in the row's place, for the caller to report or
stop on; what makes the whole file unreadable raises :class:`DataError`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from classifier_service.errors import DataError

FOLDER_SUFFIXES = (".jsonl", ".csv")
DELIMITERS = (",", ";", "\t")
_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'", ":": "':'"}


def data_files(paths: Iterable[Path | str], suffixes: Sequence[str], what: str) -> list[Path]:
    """The files the paths name: files as given (checked for a known suffix), folders by their
    ``*.jsonl`` and ``*.csv`` files; ``what`` names the data in errors ("labelled data")."""
    files: list[Path] = []
    for entry in (Path(p) for p in paths):
        if entry.is_dir():
            found = sorted(p for p in entry.iterdir()
                           if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)
            if not found:
                raise DataError(f"{entry}: no *.jsonl or *.csv files of {what} in this folder")
            files.extend(found)
        elif not entry.exists():
            raise DataError(f"{entry}: file not found")
        elif entry.suffix.lower() not in suffixes:
            raise DataError(f"{entry}: unsupported file type {entry.suffix!r} "
                            "(use .jsonl or .csv, or a folder of them)")
        else:
            files.append(entry)
    return files


def read_bytes(path: Path) -> bytes:
    """The file's bytes, without a UTF-8 byte-order mark."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw


def delimiter_of(path: Path, header: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    return max(DELIMITERS, key=header.count)


def header_hint(fieldnames: Sequence[str]) -> str:
    """When the header is one column that holds a likely delimiter: the question to ask."""
    if len(fieldnames) != 1:
        return ""
    name = fieldnames[0]
    for mark in ("|", ":", ";", "\t", ","):
        if mark in name:
            return (f"; the header has one column {name!r}: is the delimiter "
                    f"{_NAMES[mark]}?")
    return ""


def csv_rows(path: Path, raw: bytes) -> tuple[list[str], Iterator[tuple[str, object]]]:
    """The header's column names, and ``(where, row)`` pairs of the rows below it."""
    text = raw.decode("utf-8", errors="surrogateescape")  # bad bytes: found per row below
    header = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text, newline=""),
                            delimiter=delimiter_of(path, header))
    try:
        fieldnames = list(reader.fieldnames or [])
    except csv.Error as exc:
        raise DataError(f"{path}:line 1: malformed CSV: {exc}") from None
    columns = len(fieldnames)

    def rows() -> Iterator[tuple[str, object]]:
        try:
            for record in reader:
                where = f"line {reader.line_num}"
                extra = record.pop(None, None)
                if extra is not None:
                    yield where, ValueError(
                        f"{columns + len(extra)} fields, the header has {columns} "
                        f"({', '.join(fieldnames)}): quote a field that holds the delimiter")
                    continue
                values = [v for v in record.values() if isinstance(v, str)]
                if any(_undecodable(v) for v in values):
                    yield where, ValueError("not UTF-8 text (invalid bytes); save the file "
                                            "as UTF-8")
                    continue
                yield where, {k: v for k, v in record.items() if v is not None}
        except csv.Error as exc:
            raise DataError(f"{path}:line {reader.line_num}: malformed CSV: {exc}") from None

    return fieldnames, rows()


def _undecodable(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def json_row(lineno: int, line: bytes) -> tuple[str, object]:
    """One JSONL line as ``(where, row)``; a line that cannot be read is a ``ValueError``."""
    try:
        return f"line {lineno}", json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"line {lineno}", ValueError(f"not UTF-8 text ({exc.reason})")
    except json.JSONDecodeError as exc:
        return f"line {lineno}", ValueError(f"invalid JSON: {exc.msg}")
