"""An HTTP proxy on loopback in front of the S3 server that injects the failures object storage
really has: 503 SlowDown throttling, connections dropped before an answer, and bodies cut off
in the middle of a download."""
import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b'<Message>Please reduce your request rate.</Message></Error>')


class FlakyProxy:
    def __init__(self, upstream, every=4):
        u = urlsplit(upstream)
        self.host, self.port = u.hostname, u.port
        self.every = every
        self.count = 0
        self.injected = {"slowdown": 0, "drop": 0, "cut": 0}
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                with proxy.lock:
                    proxy.count += 1
                    k = proxy.count
                fault = None
                if k % proxy.every == 0:
                    fault = ("slowdown", "drop", "cut")[(k // proxy.every) % 3]
                if fault == "slowdown":
                    proxy.injected["slowdown"] += 1
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOWDOWN)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(SLOWDOWN)
                    self.close_connection = True
                    return
                if fault == "drop" or (fault == "cut" and self.command != "GET"):
                    proxy.injected["drop"] += 1
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                        self.send_header(k, v)
                if self.command == "HEAD":
                    self.send_header("Content-Length", r.getheader("Content-Length", "0"))
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                if fault == "cut" and len(data) > 1 and self.command == "GET":
                    proxy.injected["cut"] += 1
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    conn.close()
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.close_connection = True
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.server.shutdown()
        self.server.server_close()
