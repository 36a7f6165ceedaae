"""The one upstream-error mapping (``ragkit.upstream``), and the three HTTP connectors agreeing on it.

The agreement tests point the real ``openai`` chat generator, the ``openai``
embedder and the ``tgi`` generator at the shared FAKE server
(``ragkit.testing.fake_openai``) on loopback, make it fail the same way, and
check that all three raise the same error class with the same HTTP status.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ragkit.errors import (
    ConfigError,
    InputError,
    RagkitError,
    UnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from ragkit.generation import Message
from ragkit.registry import build
from ragkit.testing.fake_openai import FakeOpenAIServer
from ragkit.upstream import Upstream, is_timeout, is_transport_error, retry_after, server_message

SERVER = Upstream(name="model server http://127.0.0.1:9", timeout=2.5, retries=3, key_hint="check the KEY variable")


@pytest.mark.parametrize(
    ("status", "error", "http_status"),
    [
        (500, UpstreamError, 502),
        (502, UpstreamError, 502),
        (503, UpstreamError, 502),
        (424, UpstreamError, 502),
        (408, UpstreamTimeoutError, 504),
        (429, UnavailableError, 503),
        (409, UnavailableError, 503),
        (401, ConfigError, 400),
        (403, ConfigError, 400),
        (404, ConfigError, 400),
        (400, InputError, 400),
        (422, InputError, 400),
    ],
)
def test_each_status_maps_to_one_error(status, error, http_status):
    mapped = SERVER.status_error(status, "the server's words")
    assert type(mapped) is error
    assert mapped.http_status == http_status
    assert "http://127.0.0.1:9" in str(mapped) and "the server's words" in str(mapped)


def test_messages_say_what_to_do():
    assert "refused the API key (401): check the KEY variable" in str(SERVER.status_error(401, "no"))
    assert "(after 3 retries)" in str(SERVER.status_error(500, "boom"))
    assert "retry after 2 s" in str(SERVER.status_error(429, "slow down", retry_after=2))
    assert "retries" not in str(SERVER.status_error(500, "boom", retried=False))
    assert "did not answer within 2.5 s" in str(SERVER.timeout_error())
    assert "stopped sending within 2.5 s" in str(SERVER.timeout_error(streaming=True))


class ReadTimeout(Exception):
    """Named like httpx's: recognised by name, so the core imports no HTTP library."""


class RemoteProtocolError(Exception):
    """A subclass of a transport error, by name, as in httpx."""


class ProtocolError(Exception):
    pass


class BrokenBody(ProtocolError, RemoteProtocolError):
    pass


def _caused_by(cause: BaseException) -> Exception:
    try:
        raise RuntimeError("the client's wrapper") from cause
    except RuntimeError as exc:
        return exc


def test_other_exceptions_by_kind():
    assert type(SERVER.error(TimeoutError())) is UpstreamTimeoutError
    assert type(SERVER.error(_caused_by(ReadTimeout()))) is UpstreamTimeoutError
    assert type(SERVER.error(ConnectionRefusedError(111, "refused"))) is UnavailableError
    assert type(SERVER.error(BrokenBody("cut"), streaming=True)) is UpstreamError
    assert "broke off the stream" in str(SERVER.error(BrokenBody("cut"), streaming=True))
    assert "could not be read" in str(SERVER.error(ValueError("not JSON")))
    own = InputError("already ours")
    assert SERVER.error(own) is own
    assert type(SERVER.error(RuntimeError("x"), status=503)) is UpstreamError
    assert is_timeout(_caused_by(ReadTimeout())) and not is_timeout(ValueError())
    assert is_transport_error(OSError()) and not is_transport_error(ValueError())


def test_retry_after_and_server_messages():
    assert retry_after({"retry-after": "1.5"}) == 1.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after({"retry-after": "-1"}) is None
    assert retry_after({}) is None and retry_after(None) is None
    assert server_message({"error": {"message": "openai style"}}, "x") == "openai style"
    assert server_message({"error": "tgi style", "error_type": "overloaded"}, "x") == "tgi style"
    assert server_message({"detail": "fastapi style"}, "x") == "fastapi style"
    assert server_message("plain text", "x") == "plain text"
    assert server_message(None, "fallback") == "fallback"


# -- the three connectors agree ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _calls(root: str, **options: Any) -> dict[str, Callable[[], Any]]:
    """One request through each connector to the server at ``root``."""
    common = {"max_retries": 0, **options}
    chat = build("generator", {"type": "openai", "model": "m", "base_url": f"{root}/v1", **common})
    embedder = build("embedder", {"type": "openai", "model": "m", "base_url": f"{root}/v1", **common})
    tgi = build("generator", {"type": "tgi", "base_url": root, **common})
    question = [Message("user", "hi")]
    return {
        "openai chat": lambda: chat.generate(question),
        "openai embedder": lambda: embedder.embed_documents(["hi"]),
        "tgi": lambda: tgi.generate(question),
    }


def _raised(call: Callable[[], Any]) -> RagkitError:
    with pytest.raises(RagkitError) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("knobs", "options", "error", "http_status"),
    [
        ({"fail_always": 500}, {}, UpstreamError, 502),
        ({"fail_always": 503}, {}, UpstreamError, 502),
        ({"fail_always": 429, "retry_after": "7"}, {}, UnavailableError, 503),
        ({"delay": 1.5}, {"timeout": 0.3}, UpstreamTimeoutError, 504),
        ({"fail_always": 400}, {}, InputError, 400),
    ],
)
def test_the_connectors_agree(fake, knobs, options, error, http_status):
    fake.reset(**knobs)
    for name, call in _calls(fake.url, **options).items():
        raised = _raised(call)
        assert type(raised) is error, f"{name}: {type(raised).__name__}: {raised}"
        assert raised.http_status == http_status, name
        assert fake.url in str(raised), name
        if "retry_after" in knobs:
            assert "retry after 7 s" in str(raised), name


def test_the_connectors_agree_on_a_refused_key(fake, monkeypatch):
    fake.reset(api_key="right")
    monkeypatch.setenv("SERVER_KEY", "wrong")
    for name, call in _calls(fake.url, api_key_env="SERVER_KEY").items():
        raised = _raised(call)
        assert type(raised) is ConfigError, name
        assert "refused the API key (401): check the SERVER_KEY environment variable" in str(raised), name


def test_the_connectors_agree_on_no_server():
    root = _closed_port()
    for name, call in _calls(root).items():
        raised = _raised(call)
        assert type(raised) is UnavailableError, f"{name}: {type(raised).__name__}: {raised}"
        assert raised.http_status == 503 and "cannot reach" in str(raised) and root in str(raised), name
