"""What happens to a request on the wire, as pure decisions: retries, concurrency limits, error mapping, redaction.

Private: import the public names from `wandb_inference`."""
