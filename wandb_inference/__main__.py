"""`python -m wandb_inference ...`: the command-line tool."""

from ._cli._main import entry_point

if __name__ == "__main__":
    entry_point()
