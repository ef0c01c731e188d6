"""Batch jobs: OpenAI Batch JSONL in and out, resumable and exactly-once on disk.

`client.batch` (`_async.AsyncBatch`, `_sync.Batch`) runs many requests through the
client's own retries and concurrency gate: files (`run`, `check`) or in-memory requests
(`stream`). The pure parts: lines in (`_request`), results and lines out (`_result`),
which request goes next (`_dispatch`), counts and latencies (`_summary`); the files
(`_files`), the progress display (`_progress`), and the Ray Data callable (`_ray`).
"""
