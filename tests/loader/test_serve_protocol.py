"""`loader.serve_protocol`: uvicorn's own protocol, each response handed to the socket in one
write, and nothing written after the connection is gone."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from loader.serve_protocol import CoalescingTransport, HttpProtocol


class Socket(asyncio.Transport):
    """What the protocol's transport hands to the kernel: each write, and the close."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.aborted = False

    def write(self, data: Any) -> None:
        assert not self.closing, "a write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def answer(scope: Any, receive: Any, send: Any) -> None:
    body = f"answer to {scope['path']}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def exchange(requests: bytes, responses: int) -> Socket:
    """Feed `requests` to the protocol as one packet; return the socket once `responses`
    answers have been written (or the connection closed)."""
    config = uvicorn.Config(answer, lifespan="off", log_level="warning")
    protocol = HttpProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    socket = Socket()
    protocol.connection_made(socket)
    protocol.data_received(requests)
    for _ in range(1000):
        if socket.closing or b"".join(socket.writes).count(b"HTTP/1.1") >= responses:
            break
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # a write that would come late comes now
    return socket


def test_each_response_leaves_in_one_write() -> None:
    request = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"

    socket = asyncio.run(exchange(request, 1))

    [written] = socket.writes
    head, _, body = written.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"answer to /first"


def test_keep_alive_gets_one_write_per_response_and_a_close_sends_first() -> None:
    requests = (
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )

    socket = asyncio.run(exchange(requests, 2))

    assert [written.rpartition(b"\r\n\r\n")[2] for written in socket.writes] == [
        b"answer to /first",
        b"answer to /second",
    ]
    assert socket.closing, "Connection: close closes, after the answer"


def test_nothing_is_written_once_the_client_is_gone_or_the_connection_aborted() -> None:
    async def write_then(end: str) -> Socket:
        socket = Socket()
        transport = CoalescingTransport(socket, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        if end == "abort":
            transport.abort()
        else:
            socket.closing = True  # the peer went away before the turn ended
        await asyncio.sleep(0)
        return socket

    assert asyncio.run(write_then("abort")).writes == []
    assert asyncio.run(write_then("gone")).writes == []
