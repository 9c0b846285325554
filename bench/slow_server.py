"""``python -m bench.slow_server PORT [DELAY]``: an HTTP/1.1 server on 127.0.0.1 that answers every
request after `DELAY_SECONDS` (or DELAY seconds), the stand-in for a service an I/O-bound handler waits
on (Discord, a database); with DELAY 0, a bot's endpoint that answers at once (`bench.forward`).

asyncio streams, keep-alive, no framework: each request costs it a few microseconds, so the wait,
not this server, is what the handlers meet.
"""

from __future__ import annotations

import asyncio
import sys

IO_URL_ENV = "BENCH_IO_URL"
"""Environment variable: where `bench.io_tasks` finds this server."""

DELAY_SECONDS = 0.05
_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if delay:
                await asyncio.sleep(delay)
            writer.write(_RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, delay: float = DELAY_SECONDS) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve(reader, writer, delay)

    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else DELAY_SECONDS))
