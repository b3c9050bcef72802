"""An SMTP server on loopback that takes every mail and only counts it, at little CPU.

The benchmarks' machines have two cores, shared by mailbot, Dovecot and the receiving SMTP
server. aiosmtpd (mailbot.testing.SmtpCapture) parses each command in Python and keeps every
mail: about 1 ms of CPU a mail, taken from the cores mailbot is measured on. This server
reads the dialogue with one buffer search a line and keeps the envelope of each mail only.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from mailbot.testing.ports import free_port

_GREETING = b"220 sink.test ESMTP\r\n"
_EHLO = b"250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 104857600\r\n"
_OK = b"250 OK\r\n"
_END_OF_DATA = b"\r\n.\r\n"
_MAX_LINE = 4096


class _Session(asyncio.Protocol):
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.in_data = False
        self.searched = 0  # how far the body was searched for its end
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(_GREETING)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while self.transport is not None:
            if self.in_data:
                end = self.buffer.find(_END_OF_DATA, max(0, self.searched - 4))
                if end < 0:
                    self.searched = len(self.buffer)
                    return
                del self.buffer[:end + len(_END_OF_DATA)]
                self.in_data, self.searched = False, 0
                self.sink.accepted()
                self.transport.write(b"250 accepted\r\n")
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                if len(self.buffer) > _MAX_LINE:
                    self.transport.write(b"500 line too long\r\n")
                    self.transport.close()
                return
            line = bytes(self.buffer[:line_end])
            del self.buffer[:line_end + 2]
            self._command(line)

    def _command(self, line: bytes) -> None:
        assert self.transport is not None
        verb = line[:4].upper()
        if verb == b"EHLO":
            self.transport.write(_EHLO)
        elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            self.transport.write(_OK)
        elif verb == b"DATA":
            self.in_data = True
            self.buffer[0:0] = b"\r\n"  # so that a body ending at once ends with CRLF.CRLF
            self.transport.write(b"354 end with <CRLF>.<CRLF>\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
            self.transport = None
        else:
            self.transport.write(b"500 unknown command\r\n")


class SmtpSink:
    """Takes every mail on 127.0.0.1 and counts it; `received` is the count so far."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.received = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp-sink",
                                        daemon=True)

    def accepted(self) -> None:
        with self._lock:
            self.received += 1

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = future.result(timeout=10)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        server = self._server
        if server is not None:
            self._loop.call_soon_threadsafe(server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _listen(self) -> asyncio.AbstractServer:
        return await self._loop.create_server(lambda: _Session(self), self.host, self.port)
