"""What the fault scripts share: reading a child's announcement line, a logged-in API client."""
import http.cookiejar
import json
import time
import urllib.request


def read_line(proc, prefix, timeout):
    """The first line of proc's stdout that starts with prefix (LISTENING, CAMSIM), or None."""
    end = time.time() + timeout
    while time.time() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line.strip()
    return None


class Api:
    """The server's JSON API with a session cookie and its CSRF token."""

    def __init__(self, base):
        self.base = base
        self.csrf = ""
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, path, body=None, timeout=10):
        req = urllib.request.Request(self.base + path, method="POST" if body else "GET",
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json",
                                              "X-CSRF-Token": self.csrf})
        with self.opener.open(req, timeout=timeout) as r:
            return json.loads(r.read() or b"{}")

    def login(self, user, password):
        self.csrf = self.call("/api/login", {"username": user, "password": password}).get("csrf", "")

    def cookie(self):
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)
