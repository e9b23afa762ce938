"""Entry point: ``python -m main`` speaks the plugin protocol on stdin/stdout."""

from __future__ import annotations

from dify_plugin import DifyPluginEnv, Plugin


def main() -> None:
    Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT=120)).run()


if __name__ == "__main__":
    main()
