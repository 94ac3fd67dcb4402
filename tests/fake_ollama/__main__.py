"""``python -m tests.fake_ollama`` from the repository root, or ``python tests/fake_ollama``."""

from __future__ import annotations

import sys

if __package__:
    from .cli import main
else:  # run as a directory: make the repository root, not this directory, the import root
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[2])
    from tests.fake_ollama.cli import main

if __name__ == "__main__":
    sys.exit(main())
