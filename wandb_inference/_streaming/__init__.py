"""Streams: SSE bytes to events, events to typed chunks, chunks to a completion; the stream objects.

Private: import the public names from `wandb_inference`."""
