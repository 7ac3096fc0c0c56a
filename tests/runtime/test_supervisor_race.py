"""The serving supervisor never answers 503 to a connection it took as a worker became ready: it hands
it to the worker (the race that failed CI: a smoke request or an events-front request got a 503 just
after the model had loaded)."""

from __future__ import annotations

import socket
import threading

from dmlc.runtime.supervisor import Supervisor

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"


def test_a_connection_taken_as_a_worker_becomes_ready_goes_to_the_worker() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    ready = threading.Event()

    def worker() -> None:  # accepts only once "ready", as a model worker does after loading its model
        ready.wait()
        while True:
            try:
                conn, _ = sock.accept()
                break
            except BlockingIOError:
                ready.wait(0.01)
        conn.setblocking(True)
        conn.recv(4096)
        conn.sendall(OK)
        conn.close()

    taken = threading.Event()

    class Listening:  # the shared socket as the supervisor sees it: taking a connection makes the worker ready
        def fileno(self) -> int:
            return sock.fileno()

        def getsockname(self) -> tuple:
            return sock.getsockname()

        def accept(self) -> tuple[socket.socket, object]:
            pair = sock.accept()
            taken.set()
            ready.set()
            return pair

    sup = Supervisor.__new__(Supervisor)  # no workers started: only the answering half is under test
    sup.sock, sup.stopping, sup.ever_ready = Listening(), threading.Event(), True
    sup.ready_count = lambda: 1 if taken.is_set() else 0  # type: ignore[method-assign]
    threads = [threading.Thread(target=f, daemon=True) for f in (worker, sup._answer_while_down)]
    for t in threads:
        t.start()
    try:
        client = socket.create_connection(sock.getsockname(), timeout=10)
        client.sendall(b"GET /v1/models/m HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
    finally:
        sup.stopping.set()
        sock.close()
