"""The model catalog and what it drives: per-model constructors, binders and bound models.

Private: import the public names from `wandb_inference`."""
