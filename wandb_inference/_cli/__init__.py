"""The command-line tool (`wandb-inference`, `python -m wandb_inference`) and the demo.

`entry_point` is the console script's target (`pyproject.toml`); the CLI module loads
when it runs, never with `import wandb_inference`.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["entry_point"]


def entry_point() -> NoReturn:
    """Run the CLI with `sys.argv` and exit with its code."""
    from ._main import entry_point as run

    run()
