"""Key, base URL and project resolution; secret hygiene of the options."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import httpx
import pytest
from _helpers import API_KEY

import wandb_inference as wi
from wandb_inference._config import (
    DEFAULT_BASE_URL,
    resolve_api_key,
    resolve_base_url,
    resolve_project,
    validate_header_value,
)


def test_key_argument_wins() -> None:
    assert resolve_api_key("arg-key", {"WANDB_API_KEY": "env-key"}).get() == "arg-key"


def test_key_from_env() -> None:
    assert resolve_api_key(None, {"WANDB_API_KEY": "env-key"}).get() == "env-key"


def test_key_from_netrc(tmp_path: Path) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password netrc-key\n")
    netrc.chmod(0o600)
    assert resolve_api_key(None, {"HOME": str(tmp_path)}).get() == "netrc-key"


def test_key_from_netrc_of_custom_wandb_host(tmp_path: Path) -> None:
    netrc = tmp_path / "n"
    netrc.write_text("machine wandb.corp.test login user password corp-key\n")
    netrc.chmod(0o600)
    env = {"NETRC": str(netrc), "WANDB_BASE_URL": "https://wandb.corp.test"}
    assert resolve_api_key(None, env).get() == "corp-key"


def test_missing_key_names_every_place(tmp_path: Path) -> None:
    with pytest.raises(wi.ConfigurationError) as info:
        resolve_api_key(None, {"HOME": str(tmp_path)})
    message = str(info.value)
    assert "api_key argument" in message
    assert "WANDB_API_KEY" in message
    assert str(tmp_path / ".netrc") in message
    assert "wandb login" in message


def test_unreadable_netrc_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / ".netrc").write_text("machine\n")
    with pytest.raises(wi.ConfigurationError, match="unreadable"):
        resolve_api_key(None, {"HOME": str(tmp_path)})


@pytest.mark.parametrize("bad", ["", "   ", "key\nwith-newline", "k\x00", "kéy"])
def test_bad_keys_rejected_without_showing_them(bad: str) -> None:
    with pytest.raises(wi.ConfigurationError) as info:
        resolve_api_key(bad, {})
    if bad.strip():
        assert bad.strip() not in str(info.value)


def test_secret_never_shows() -> None:
    secret = resolve_api_key(API_KEY, {})
    assert API_KEY not in repr(secret) and API_KEY not in str(secret) and API_KEY not in f"{secret}"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)


def test_client_repr_copy_and_pickle_hide_key() -> None:
    client = wi.Client(API_KEY)
    try:
        assert API_KEY not in repr(client)
        assert API_KEY not in repr(client._options)
        assert API_KEY not in repr(copy.copy(client).__dict__)
        with pytest.raises(TypeError):
            pickle.dumps(client)
    finally:
        client.close()


def test_base_url_resolution() -> None:
    assert resolve_base_url(None, {}) == DEFAULT_BASE_URL
    assert resolve_base_url(None, {"WANDB_INFERENCE_BASE_URL": "http://127.0.0.1:9/v1/"}) == "http://127.0.0.1:9/v1"
    assert resolve_base_url("https://a.test/v1", {"WANDB_INFERENCE_BASE_URL": "http://b"}) == "https://a.test/v1"
    assert resolve_base_url(httpx.URL("https://a.test/v1"), {}) == "https://a.test/v1"


@pytest.mark.parametrize("bad", ["ftp://x/v1", "not a url", "https://", "https://a.test/v1?x=1"])
def test_bad_base_urls(bad: str) -> None:
    with pytest.raises(wi.ConfigurationError):
        resolve_base_url(bad, {})


def test_project_resolution() -> None:
    assert resolve_project(None, {}) is None
    assert resolve_project("team/proj", {"WANDB_INFERENCE_PROJECT": "a/b"}) == "team/proj"
    assert resolve_project(None, {"WANDB_INFERENCE_PROJECT": "a/b"}) == "a/b"
    assert resolve_project(None, {"WANDB_ENTITY": "team", "WANDB_PROJECT": "proj"}) == "team/proj"
    assert resolve_project(None, {"WANDB_PROJECT": "team/proj"}) == "team/proj"
    assert resolve_project(None, {"WANDB_PROJECT": "proj"}) is None


@pytest.mark.parametrize("bad", ["team", "a/b/c", "team/ proj", "team/proj\n", "team/proj\r\nX: y", "/proj", "team/"])
def test_bad_projects_rejected(bad: str) -> None:
    with pytest.raises(wi.ConfigurationError, match="team/project"):
        resolve_project(bad, {})


def test_project_with_newline_rejected_before_any_request() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(handler)
    with pytest.raises(wi.ConfigurationError):
        wi.Client(API_KEY, project="team/proj\n", http_client=httpx.Client(transport=transport))
    assert sent == []


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\x00b", "a\x7fb"])
def test_header_values_with_control_characters(value: str) -> None:
    with pytest.raises(wi.InvalidRequestError, match="control character"):
        validate_header_value("X-Test", value)
    with pytest.raises(wi.ConfigurationError, match="control character"):
        wi.Client(API_KEY, default_headers={"X-Test": value})


def test_bad_header_name() -> None:
    with pytest.raises(wi.InvalidRequestError, match="header name"):
        validate_header_value("Bad Name", "v")


@pytest.mark.parametrize(
    ("option", "value"),
    [("timeout", -1), ("timeout", "soon"), ("max_retries", -1), ("max_retries", 1.5), ("max_concurrency", 0)],
)
def test_bad_options(option: str, value: object) -> None:
    with pytest.raises(wi.ConfigurationError):
        wi.Client(API_KEY, **{option: value})  # type: ignore[arg-type]


def test_wrong_http_client_colour() -> None:
    with pytest.raises(wi.ConfigurationError, match=r"httpx\.AsyncClient"):
        wi.AsyncClient(API_KEY, http_client=httpx.Client())  # type: ignore[arg-type]


def test_client_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", API_KEY)
    monkeypatch.setenv("WANDB_ENTITY", "team")
    monkeypatch.setenv("WANDB_PROJECT", "proj")
    monkeypatch.setenv("WANDB_INFERENCE_BASE_URL", "http://127.0.0.1:1/v1")
    with wi.Client() as client:
        assert client.project == "team/proj"
        assert client.base_url == "http://127.0.0.1:1/v1"
        assert client.max_retries == 3
        assert client.timeout.read == 600
