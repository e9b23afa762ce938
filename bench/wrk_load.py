"""HTTP load with wrk (a C load generator) against ``POST /v1/route``, through bench/route.lua."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("route.lua")
WRK_HINT = (
    "wrk is not installed. On Debian/Ubuntu as root: apt-get install -y wrk. Without root: "
    "cd ~/.cache && apt-get download wrk libluajit-5.1-2 libluajit-5.1-common && "
    "for d in *.deb; do dpkg -x \"$d\" wrk-root; done, then pass "
    "--wrk ~/.cache/wrk-root/usr/bin/wrk (the bench finds its libraries beside it)"
)
RESULT = re.compile(r"WRK_RESULT (\{.*?\})")


@dataclass(frozen=True)
class WrkResult:
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    """non-2xx answers plus socket errors (connect, read, write, timeout)"""

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def find_wrk(explicit: Path | None) -> Path | None:
    """``explicit`` if it is a file, else ``wrk`` on PATH; None when there is none."""
    if explicit is not None:
        return explicit if explicit.is_file() else None
    found = shutil.which("wrk")
    return Path(found) if found else None


def wrk_environment(wrk: Path) -> dict[str, str]:
    """For a wrk unpacked with ``dpkg -x`` into ROOT/usr/bin: ROOT's libraries on the path."""
    env = dict(os.environ)
    root = wrk.resolve().parent.parent  # ROOT/usr
    libs = [str(d) for d in sorted((root / "lib").glob("*-linux-gnu")) if d.is_dir()]
    if root != Path("/usr") and libs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, env.get("LD_LIBRARY_PATH", "")])
    return env


def run_wrk(
    wrk: Path, url: str, bodies: Path, connections: int, duration_s: int, threads: int = 1
) -> WrkResult:
    """One wrk run of ``duration_s`` seconds at ``connections`` keep-alive connections."""
    command = [str(wrk), "--latency", f"-t{min(threads, connections)}", f"-c{connections}",
               f"-d{duration_s}s", "--timeout", "10s", "-s", str(LUA_SCRIPT), url,
               "--", str(bodies)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60,
                          env=wrk_environment(wrk), check=False)
    match = RESULT.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-500:]}")
    data = json.loads(match.group(1))
    errors = sum(int(data[k]) for k in ("non_2xx", "connect", "read", "write", "timeout"))
    return WrkResult(
        connections=connections,
        requests=int(data["requests"]),
        seconds=int(data["duration_us"]) / 1e6,
        p50_ms=int(data["p50_us"]) / 1000,
        p99_ms=int(data["p99_us"]) / 1000,
        errors=errors,
    )


def write_bodies(prompts: list[str], path: Path) -> Path:
    """One ``{"prompt": ...}`` JSON body a line (ASCII, so wrk's byte length is right)."""
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts),
                    encoding="ascii")
    return path
