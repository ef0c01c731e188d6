"""wandb-inference: a typed, async-first Python SDK for W&B Inference."""

from ._version import __version__

__all__ = ["__version__"]
