"""Compare the SDK's model catalog with a live `GET /models` listing.

    python scripts/check_catalog.py [--base-url URL] [--api-key KEY] [--project TEAM/PROJECT]

Prints the ids the server lists that the catalog lacks, the catalog's GA ids the server
does not list, and the ids the catalog calls retired that the server still lists.
Exit codes: 0 no difference, 1 differences, 2 the listing could not be fetched or was
empty (an empty listing is never authoritative: the service once briefly returned one).
The key defaults to WANDB_API_KEY; the base URL to WANDB_INFERENCE_BASE_URL, then
https://api.inference.wandb.ai/v1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wandb_inference._catalog._lookup import CatalogDiff, diff_listing, get_model_info  # noqa: E402

DEFAULT_BASE_URL = "https://api.inference.wandb.ai/v1"
EXIT_OK, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2


def fetch_ids(
    base_url: str, api_key: str | None, project: str | None, transport: httpx.BaseTransport | None = None
) -> list[str]:
    """The model ids `GET {base_url}/models` lists, in order.

    Args:
        base_url: the API root, ending in /v1.
        api_key: sent as a Bearer token when given.
        project: sent as `OpenAI-Project` when given.
        transport: an httpx transport (tests pass a MockTransport).

    Returns:
        The ids.

    Raises:
        httpx.HTTPError: the request failed or the status was not 2xx.
        ValueError: the body is not a model list.
    """
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if project:
        headers["OpenAI-Project"] = project
    with httpx.Client(transport=transport, timeout=30.0, follow_redirects=False) as client:
        response = client.get(base_url.rstrip("/") + "/models", headers=headers)
        response.raise_for_status()
        body: Any = response.json()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"expected {{'object': 'list', 'data': [...]}}, got {str(body)[:200]}")
    ids = [item.get("id") for item in data if isinstance(item, dict)]
    return [i for i in ids if isinstance(i, str)]


def report(diff: CatalogDiff) -> str:
    """The diff as text, one section per kind of difference."""
    lines: list[str] = []
    if diff.unknown:
        lines.append("Listed by the server, unknown to the catalog (add rows):")
        lines += [f"  + {model_id}" for model_id in diff.unknown]
    if diff.missing:
        lines.append("GA in the catalog, not listed by the server (retired? record the date):")
        for model_id in diff.missing:
            info = get_model_info(model_id)
            ctor = f"  (client.{info.constructor}())" if info else ""
            lines.append(f"  - {model_id}{ctor}")
    if diff.retired_but_listed:
        lines.append("Retired in the catalog, still listed by the server:")
        lines += [f"  ! {model_id}" for model_id in diff.retired_but_listed]
    if not lines:
        lines.append("The catalog matches the listing.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    """Run the check; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-url", default=os.environ.get("WANDB_INFERENCE_BASE_URL") or DEFAULT_BASE_URL)
    parser.add_argument("--api-key", default=os.environ.get("WANDB_API_KEY"))
    parser.add_argument("--project", default=os.environ.get("WANDB_INFERENCE_PROJECT"))
    args = parser.parse_args(argv)
    try:
        ids = fetch_ids(args.base_url, args.api_key, args.project, transport)
    except (httpx.HTTPError, ValueError) as exc:
        # Never echo the key: httpx errors name the URL and status only.
        print(f"could not list the models at {args.base_url}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    diff = diff_listing(ids)
    if diff.empty_listing:
        print(
            f"{args.base_url} listed no models; an empty listing is never authoritative, try again later",
            file=sys.stderr,
        )
        return EXIT_ERROR
    print(f"{len(ids)} models listed at {args.base_url}")
    print(report(diff))
    return EXIT_DIFFERENT if diff.has_differences else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
