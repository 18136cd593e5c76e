"""A fake upstream resolver on loopback: tests never reach a real one."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

Obj = dict[str, Any]


class FakeUpstream(asyncio.DatagramProtocol):
    """Answers A queries from `zone` (name -> list of IPs, TTL 60); NXDOMAIN otherwise; counts queries.

    `silent=True` makes it swallow every query (a dead resolver, for timeout tests).
    """

    def __init__(self, zone: dict[str, list[str]], *, silent: bool = False) -> None:
        self.zone = {k.lower().rstrip(".") + ".": v for k, v in zone.items()}
        self.silent = silent
        self.queries: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.2") -> FakeUpstream:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        self.queries.append(question.name.to_text().lower())
        if self.silent or self.transport is None:
            return
        response = dns.message.make_response(query)
        ips = self.zone.get(question.name.to_text().lower())
        if ips is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(dns.rrset.from_text(
                "example.com.", 60, "IN", "SOA", "ns.example.com. h.example.com. 1 2 3 4 20"))
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", "A", ips))
        self.transport.sendto(response.to_wire(), addr)
