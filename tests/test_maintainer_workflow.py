"""The maintainer's workflow, replayed on a copy of the repository: edit the API document,
run `scripts/regen.sh`, and the whole facade follows with no other edit.

On a temporary copy: add a chat parameter with constraints (`top_k`), remove one
(`cache_salt`), add an operation (`POST /completions`); run regen.sh. Then, importing the
copy: both clients and a bound model accept, check and send `top_k`, refuse `cache_salt`
before sending; the new operation is callable through `client.call()` with the key,
the project header and typed errors; mypy sees both parameter changes; the local server
(validating against the document shipped in the package) accepts `top_k` and refuses an
out-of-range one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

TOP_K = """        top_k:
          type: [integer, "null"]
          minimum: 1
          maximum: 500
          description: Sample from the k most likely tokens only.
"""
CACHE_SALT = """        cache_salt:
          type: [string, "null"]
          minLength: 1
          description: Separates prefix-cache entries (requests with different salts share none).
"""
COMPLETIONS_PATH = """  /completions:
    post:
      operationId: createCompletion
      tags: [completions]
      summary: A legacy text completion.
      requestBody:
        required: true
        content:
          application/json:
            schema:
              $ref: "#/components/schemas/CompletionRequest"
      responses:
        "200":
          description: The completion.
          content:
            application/json:
              schema:
                $ref: "#/components/schemas/Completion"
"""
COMPLETIONS_SCHEMAS = """    CompletionRequest:
      type: object
      required: [model, prompt]
      properties:
        model:
          type: string
          minLength: 1
        prompt:
          type: string
          minLength: 1
        max_tokens:
          type: [integer, "null"]
          minimum: 1
    Completion:
      type: object
      required: [id, choices]
      properties:
        id:
          type: string
        choices:
          type: array
          items:
            $ref: "#/components/schemas/CompletionChoice"
    CompletionChoice:
      type: object
      required: [text]
      properties:
        text:
          type: string
"""


def _env(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "PYTHON"))}
    env["PYTHONPATH"] = f"{copy}{os.pathsep}{copy / 'generated'}"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    return env


@pytest.fixture(scope="module")
def edited_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openapi-python-client", path=str(BIN)) is None:
        pytest.skip("openapi-python-client is not installed in this environment")
    copy = tmp_path_factory.mktemp("maintainer")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("openapi", "scripts", "generated", "wandb_inference"):
        shutil.copytree(ROOT / part, copy / part, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    spec = copy / "openapi" / "openapi.yaml"
    text = spec.read_text(encoding="utf-8")
    assert CACHE_SALT in text and "  /embeddings:\n" in text and "    EmbeddingRequest:\n" in text
    text = text.replace(CACHE_SALT, TOP_K)  # remove one parameter, add another
    text = text.replace("  /embeddings:\n", COMPLETIONS_PATH + "  /embeddings:\n", 1)
    text = text.replace("    EmbeddingRequest:\n", COMPLETIONS_SCHEMAS + "    EmbeddingRequest:\n", 1)
    spec.write_text(text, encoding="utf-8")
    regen = subprocess.run(
        ["bash", "scripts/regen.sh"], cwd=copy, env=_env(copy), capture_output=True, text=True, timeout=300
    )
    assert regen.returncode == 0, regen.stdout + regen.stderr
    check = subprocess.run(
        ["bash", "scripts/regen.sh", "--check"], cwd=copy, env=_env(copy), capture_output=True, text=True, timeout=300
    )
    assert check.returncode == 0, check.stderr
    return copy


def _run(copy: Path, code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=copy,
        env=_env(copy),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_both_clients_and_bound_models_follow_the_document(edited_copy: Path) -> None:
    out = _run(
        edited_copy,
        """
        import asyncio, json
        import httpx
        import os
        import wandb_inference as wi
        from wandb_inference.server import LocalServer

        COPY = os.getcwd()
        assert wi.__file__.startswith(COPY), wi.__file__
        MODEL = "meta-llama/Llama-3.3-70B-Instruct"
        MSG = [{"role": "user", "content": "hi"}]

        def refused(call, needle):
            try:
                call()
            except wi.InvalidRequestError as exc:
                assert needle in str(exc), str(exc)
                return
            raise AssertionError("not refused: " + needle)

        with LocalServer(api_key="k") as server:
            client = wi.Client("k", base_url=server.base_url, project="team/proj")
            assert client.chat.create(model=MODEL, messages=MSG, top_k=5, max_tokens=3).text
            assert server.requests.last.body["top_k"] == 5
            llama = client.llama_3_3_70b()
            assert llama.create(messages=MSG, top_k=7, max_tokens=3).text
            assert server.requests.last.body["top_k"] == 7
            sent = len(server.requests)
            refused(lambda: client.chat.create(model=MODEL, messages=MSG, top_k=0), "top_k must be at least 1")
            refused(lambda: client.chat.create(model=MODEL, messages=MSG, top_k=501), "top_k must be at most 500")
            refused(lambda: client.chat.create(model=MODEL, messages=MSG, top_k="5"), "top_k must be an integer")
            refused(lambda: llama.create(messages=MSG, top_k=0), "top_k must be at least 1")
            refused(lambda: client.chat.create(model=MODEL, messages=MSG, cache_salt="s"), "unknown parameter(s): cache_salt")
            refused(lambda: llama.create(messages=MSG, cache_salt="s"), "unknown parameter(s): cache_salt")
            assert len(server.requests) == sent  # nothing was sent for the refused calls

            async def main():
                async with wi.AsyncClient("k", base_url=server.base_url) as aclient:
                    reply = await aclient.chat.create(model=MODEL, messages=MSG, top_k=9, max_tokens=3)
                    assert reply.text and server.requests.last.body["top_k"] == 9
                    try:
                        await aclient.chat.create(model=MODEL, messages=MSG, top_k=0)
                    except wi.InvalidRequestError as exc:
                        assert "top_k" in str(exc)
                    else:
                        raise AssertionError("async top_k=0 not refused")
            asyncio.run(main())

            # The server validates against the document shipped in the package.
            http = httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer k"})
            ok = http.post("/chat/completions", json={"model": MODEL, "messages": MSG, "top_k": 3, "max_tokens": 2})
            bad = http.post("/chat/completions", json={"model": MODEL, "messages": MSG, "top_k": 0})
            assert ok.status_code == 200 and bad.status_code == 422 and "top_k" in bad.text, bad.text

            # The new operation is callable before any facade method exists for it.
            refused(lambda: client.call("createCompletion", {"model": MODEL, "prompt": ""}), "body.prompt")
            try:
                client.call("createCompletion", {"model": MODEL, "prompt": "Once upon"})
            except wi.NotFoundError:
                pass  # the local server serves no /completions: a typed error, after sending
            last = server.requests.last
            assert last.path.endswith("/completions") and last.body == {"model": MODEL, "prompt": "Once upon"}
            assert last.header("authorization") == "Bearer k" and last.header("openai-project") == "team/proj"
        print("ok")
        """,
    )
    assert out.strip().endswith("ok")


def test_mypy_sees_the_added_and_the_removed_parameter(edited_copy: Path) -> None:
    app = edited_copy / "typed_app.py"
    app.write_text(
        textwrap.dedent(
            """
            import wandb_inference as wi

            def good(client: wi.Client) -> str:
                return client.chat.create(model="m", messages=[{"role": "user", "content": "x"}], top_k=5).text

            def removed(client: wi.Client) -> str:
                return client.chat.create(model="m", messages=[{"role": "user", "content": "x"}], cache_salt="s").text

            def wrong_type(client: wi.Client) -> str:
                return client.chat.create(model="m", messages=[{"role": "user", "content": "x"}], top_k="5").text
            """
        ),
        encoding="utf-8",
    )
    env = _env(edited_copy)
    env["MYPYPATH"] = env.pop("PYTHONPATH")
    result = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--no-incremental", "--follow-imports=silent", "typed_app.py"],
        cwd=edited_copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert any("typed_app.py:8:" in line and "cache_salt" in line for line in errors), result.stdout
    assert any("typed_app.py:11:" in line and "call-overload" in line for line in errors), result.stdout  # top_k="5"
    assert not any("typed_app.py:5:" in line for line in errors), result.stdout
