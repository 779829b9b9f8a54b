"""A TCP relay that behaves like a Service through kube-proxy: each new connection goes to the
current backend, an established one stays on the backend it was opened to (conntrack) however often
the backend is switched. The simulators' reconnection is tested through it: a broker frozen with
SIGSTOP stands in for a partitioned region, whose connections are never closed.

    relay = Relay(backend_port)        # listens on relay.port (loopback) in its own thread
    relay.switch(other_port)           # the Service's selector moved: new connections go there
    relay.close()
"""

import asyncio
import contextlib
import threading

from tier0_dev.procs import free_port


class Relay:
    def __init__(self, backend: int) -> None:
        self.port = free_port()
        self.backend = backend
        self.opened: list[int] = []
        """The backend of each connection, in the order they were opened."""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"relay-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the relay on {self.port} did not start")

    def switch(self, backend: int) -> None:
        self.backend = backend

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        backend = self.backend
        self.opened.append(backend)
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", backend)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
