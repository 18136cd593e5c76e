"""The DNS wire protocol over UDP and TCP (RFC 1035 / 7766), on asyncio.

Why our own small loop rather than a DNS server framework: the answer logic
lives in `records.py`; what remains is framing, which asyncio does well — a
DatagramProtocol for UDP and a stream server with the 2-byte length prefix for
TCP — while dnspython parses and renders messages. The UDP size limit is the
part resolvers depend on: 512 bytes without EDNS, the client's advertised
payload with it; anything larger is truncated at an RRset boundary with the TC
bit set, so the client retries over TCP (which carries up to 64 KiB).

Each query is handled on its own task (forwarding may wait on an upstream);
tasks are tracked and their failures logged, never lost, and a query that
raises gets SERVFAIL instead of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from kubeling.dns.forward import Forwarder, first_answer
from kubeling.dns.records import RecordStore

log = logging.getLogger(__name__)

UDP_LEGACY_LIMIT = 512
OUR_EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 figure: no IP fragmentation on common paths
TCP_IDLE_TIMEOUT = 10.0
MAX_INFLIGHT_UDP = 2048


class DNSServer:
    """Answers DNS queries on one address over UDP and TCP from a RecordStore, forwarding the rest."""

    def __init__(self, store: RecordStore, forwarder: Forwarder | None, *, host: str, port: int) -> None:
        self.store = store
        self.forwarder = forwarder
        self.host = host
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Bind UDP then TCP on the same port (port 0: the kernel picks one, shared by both;
        if that number is taken for TCP, pick again)."""
        loop = asyncio.get_running_loop()
        wanted = self.port
        for attempt in range(20 if wanted == 0 else 1):
            transport, _ = await loop.create_datagram_endpoint(lambda: _UDPProtocol(self),
                                                               local_addr=(self.host, wanted))
            self._transport = transport
            self.port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port, reuse_address=True)
                return
            except OSError:
                transport.close()
                self._transport = None
                if wanted != 0 or attempt == 19:
                    raise

    async def close(self) -> None:
        """Stop listening, end open TCP connections and in-flight queries."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._tcp is not None:
            self._tcp.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()
            self._tcp = None

    # -- tasks ----------------------------------------------------------------------------------

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("DNS task %s failed", task.get_name(), exc_info=task.exception())

    def _on_datagram(self, data: bytes, addr: Any) -> None:
        if len(self._tasks) >= MAX_INFLIGHT_UDP:
            log.warning("DNS server overloaded: dropping a query from %s", addr)
            return
        self._track(asyncio.get_running_loop().create_task(self._answer_udp(data, addr), name="dns-udp"))

    async def _answer_udp(self, data: bytes, addr: Any) -> None:
        wire = await self.handle(data, udp=True)
        if wire is not None and self._transport is not None:
            self._transport.sendto(wire, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._track(task)
        try:
            while True:  # RFC 7766: several queries may share one connection
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]),
                                              TCP_IDLE_TIMEOUT)
                wire = await self.handle(data, udp=False)
                if wire is None:
                    break
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # -- one message ------------------------------------------------------------------------------

    async def handle(self, data: bytes, *, udp: bool) -> bytes | None:
        """Wire query in, wire response out (None: nothing to send, e.g. garbage or a response)."""
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return _formerr(data)
        if query.flags & dns.flags.QR:
            return None
        response = dns.message.make_response(query, recursion_available=self.forwarder is not None,
                                             our_payload=OUR_EDNS_PAYLOAD)
        try:
            await self._resolve(query, response)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("answering %s failed", query.question[0] if query.question else "?")
            response = dns.message.make_response(query, our_payload=OUR_EDNS_PAYLOAD)
            response.set_rcode(dns.rcode.SERVFAIL)
        if not udp:
            limit = 65535
        elif query.edns < 0:
            limit = UDP_LEGACY_LIMIT
        else:
            limit = max(UDP_LEGACY_LIMIT, min(query.payload, 65535))
        return response.to_wire(max_size=limit, prefer_truncation=True)

    async def _resolve(self, query: dns.message.Message, response: dns.message.Message) -> None:
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return
        question = query.question[0]
        if question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
            response.set_rcode(dns.rcode.NOTIMP)
            return
        answer = self.store.lookup(question.name, question.rdtype)
        if answer is None:
            if self.forwarder is None:
                response.set_rcode(dns.rcode.REFUSED)
                return
            upstream = await self.forwarder.resolve(question.name, question.rdtype, question.rdclass)
            response.set_rcode(upstream.rcode())
            response.answer = list(upstream.answer)
            response.authority = list(upstream.authority)
            response.additional = list(upstream.additional)
            return
        response.flags |= dns.flags.AA
        response.set_rcode(answer.rcode)
        response.answer = list(answer.answer)
        response.authority = list(answer.authority)
        response.additional = list(answer.additional)
        if answer.chase is not None and self.forwarder is not None:
            # ExternalName: the CNAME is ours, the target's records come from upstream (CoreDNS does this).
            upstream = await first_answer(self.forwarder, answer.chase, question.rdtype)
            if upstream is not None:
                response.answer.extend(upstream.answer)
                if upstream.rcode() != dns.rcode.NOERROR or not upstream.answer:
                    response.set_rcode(upstream.rcode())
                    response.authority = list(upstream.authority)


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable from a vanished client
        log.debug("DNS UDP error: %s", exc)


def _formerr(data: bytes) -> bytes | None:
    """FORMERR for an unparseable query whose header is readable (RFC 1035 4.1.1); else drop it."""
    if len(data) < 12:
        return None
    msg_id, flags = struct.unpack("!HH", data[:4])
    if flags & dns.flags.QR:
        return None
    out_flags = dns.flags.QR | (flags & (0x7800 | dns.flags.RD)) | dns.rcode.FORMERR
    return struct.pack("!HHHHHH", msg_id, out_flags, 0, 0, 0, 0)
