"""`lazy_module`: a module imported when first used, to keep `import wandb_inference` light.

The clients need request building, response decoding and error mapping only once a call
is made, not to be constructed. Their modules hold such a module in a global:

```python
if TYPE_CHECKING:
    from . import _prepare, _replies
else:
    _prepare = lazy_module("wandb_inference._prepare")
    _replies = lazy_module("wandb_inference._replies")
```

and call `_prepare.prepare_chat(...)`. The first attribute read imports the module; the
proxy then shares the module's namespace, so later reads are one dictionary lookup
(about 30 ns, against 10 ns for a module attribute) and see monkeypatching. Importing
is thread-safe: a second thread waits on the import system's lock for the module.
"""

from __future__ import annotations

import importlib

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands for a module until an attribute is read, then reads through to it."""

    def __init__(self, name: str) -> None:
        self.__name__ = name  # the module's namespace has the same key once loaded

    def __getattr__(self, attr: str) -> object:
        # Only reached for names missing from the proxy's namespace: before the import,
        # or for a name the module lacks (then getattr raises the module's error).
        module = importlib.import_module(self.__name__)
        self.__dict__ = module.__dict__
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


def lazy_module(name: str) -> object:
    """A stand-in for the module `name` (absolute), imported on first attribute access."""
    return _LazyModule(name)
