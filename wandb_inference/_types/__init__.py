"""The result types users read (completion, chunk, embeddings, model list) and their parsers.

Private: import the public names from `wandb_inference`."""
