"""The edge's protocol with one write per answer undone: the bench's ``relay-two-writes`` server.

It keeps the bounds on request heads and lets uvicorn write a response's head and body apart, as
plain uvicorn does, so that one run prices `relay.edge.protocol.OneWriteTransport` on its own.
"""

from relay.edge.protocol import EdgeHttpProtocol, OneWriteTransport


class TwoWritesProtocol(EdgeHttpProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and isinstance(cycle.transport, OneWriteTransport):
            cycle.transport = self.transport
