"""Serve the test suite's fake Ollama (tests/doubles.py) on 127.0.0.1 for the n8n end-to-end run.

    PYTHONPATH=<repo> python n8n_nodes/e2e/fake_ollama.py --port 11500 \
        --answer 'tiny:1b=I am not sure.' --answer 'mid:13b=A full answer ...'

Each ``--answer MODEL=TEXT`` scripts what that model says; the double speaks Ollama's real API
(/api/chat with NDJSON streaming, /api/generate, /api/tags, /api/ps).
"""

from __future__ import annotations

import argparse

import uvicorn

from tests.doubles import Script, fake_ollama


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answer", action="append", default=[], metavar="MODEL=TEXT")
    args = parser.parse_args()
    double = fake_ollama()
    for spec in args.answer:
        model, sep, text = spec.partition("=")
        if not sep:
            parser.error(f"--answer {spec!r}: expected MODEL=TEXT")
        double.scripts[model] = Script(content=text)
    uvicorn.run(double.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
