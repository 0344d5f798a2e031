"""`python app.py doctor [--url URL] [--origin ORIGIN]`: the old app's fix-it checklist as a command,
run against a running server (directly, or through the reverse proxy when URL is the proxy's).

Each check prints ok / warn / FAIL with what it saw, and every failure one line with the fix. The exit
status is 1 when any check failed. The secret key is checked in the settings this command runs with
(the same config file and environment as the server's), never over the network: no route reveals
anything about the key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
from dataclasses import dataclass

import aiohttp

from aurora.settings import MIN_PRODUCTION_KEY_CHARS, Settings

TIMEOUT_S = 5.0
MAX_SKEW_S = 30.0
STICKY_ROUNDS = 3
ROOT_TEXT = "Aurora WebSocket Server Running"


@dataclass
class Check:
    name: str
    status: str  # ok | warn | FAIL
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        out = [f"{self.status:<4}  {self.name}: {self.detail}"]
        if self.fix and self.status != "ok":
            out.append(f"      fix: {self.fix}")
        return out


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "FAIL", detail, fix)


class Doctor:
    def __init__(self, url: str, origin: str | None, settings: Settings) -> None:
        self.url = url.rstrip("/")
        self.origin = origin
        self.settings = settings

    async def run(self) -> list[Check]:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self.session = session
            reachable = await self.reachable()
            if reachable.status == "FAIL":
                return [reachable]
            checks = [reachable, *await self.health(), self.secret_key(), *await self.socketio()]
            if self.origin:
                checks += await self.cors()
            return checks

    def _headers(self) -> dict[str, str]:
        return {"Origin": self.origin} if self.origin else {}

    async def reachable(self) -> Check:
        try:
            async with self.session.get(self.url + "/") as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return fail("reachable", f"{self.url} did not answer ({exc.__class__.__name__}: {exc})",
                        "start the server (python app.py, or systemctl start aurora) and check --url, the "
                        "port and any firewall")
        if response.status != 200 or text.strip() != ROOT_TEXT:
            return fail("reachable", f"GET / answered {response.status} {text[:60]!r}, not Aurora",
                        "--url points at something else: the proxy must pass / and /socket.io/ to Aurora")
        return ok("reachable", f"GET {self.url}/ answered {ROOT_TEXT!r}")

    async def health(self) -> list[Check]:
        try:
            async with self.session.get(self.url + "/health") as response:
                body = await response.json(content_type=None)
                date = response.headers.get("Date")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return [fail("health", f"GET /health failed ({exc.__class__.__name__})",
                         "the proxy must pass /health to Aurora; see the server's log")]
        checks = []
        status = body.get("status") if isinstance(body, dict) else None
        if status == "ok":
            checks.append(ok("health", "GET /health: ok"))
        else:
            checks.append(fail("health", f"GET /health answered {response.status} status={status!r}",
                               "see the database and Redis checks below and the server's log"))
        if body.get("database") == "ok":
            checks.append(ok("database", "the server reaches its database"))
        else:
            checks.append(fail("database", "the server cannot reach its database",
                               "check database_url and that PostgreSQL runs (pg_isready -h HOST); SQLite: "
                               "the data directory must be writable"))
        queue = body.get("message_queue")
        if queue is None:
            checks.append(ok("redis", "not used (one process)"))
        elif queue == "ok":
            checks.append(ok("redis", "the server reaches Redis"))
        else:
            checks.append(fail("redis", "the server cannot reach Redis: other processes' sockets miss its "
                               "broadcasts", "check redis_url and that Redis runs (redis-cli -u URL ping)"))
        checks.append(self.clock(date))
        return checks

    def clock(self, date: str | None) -> Check:
        if not date:
            return Check("clock", "warn", "no Date header to compare with")
        server = email.utils.parsedate_to_datetime(date)
        skew = (server - dt.datetime.now(dt.UTC)).total_seconds()
        if abs(skew) > MAX_SKEW_S:
            return fail("clock", f"the server's clock is {skew:+.0f} s off this machine's",
                        "synchronise clocks with NTP (timedatectl set-ntp true, or chrony): tokens, signed "
                        "file URLs and traces use wall-clock time")
        return ok("clock", f"skew {skew:+.0f} s (Date header)")

    def secret_key(self) -> Check:
        s = self.settings
        if not s.is_production:
            return Check("secret key", "warn", f"env={s.env}: not checked (a generated key in {s.data_dir} is "
                         "fine outside production)", "run doctor with the server's config and env=production")
        weak = [k for k in s.secret_keys if len(k) < MIN_PRODUCTION_KEY_CHARS or len(set(k)) < 10]
        if weak:
            return fail("secret key", f"{len(weak)} key(s) too short or too repetitive",
                        "set AURORA_SECRET_KEY to python -c 'import secrets; print(secrets.token_urlsafe(48))'")
        return ok("secret key", f"{len(s.secret_keys)} key(s) of at least {MIN_PRODUCTION_KEY_CHARS} characters")

    # -- Socket.IO -----------------------------------------------------------------------------
    async def _open_polling(self) -> tuple[int, str]:
        async with self.session.get(self.url + "/socket.io/?EIO=4&transport=polling",
                                    headers=self._headers()) as response:
            return response.status, await response.text()

    async def socketio(self) -> list[Check]:
        proxy_fix = ("the proxy must pass /socket.io/ to Aurora (nginx: location /socket.io/ { proxy_pass "
                     "http://aurora; })")
        try:
            status, text = await self._open_polling()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return [fail("socket.io polling", f"handshake failed ({exc.__class__.__name__})", proxy_fix)]
        if status != 200 or not text.startswith("0{"):
            return [fail("socket.io polling", f"handshake answered {status} {text[:80]!r}",
                         proxy_fix if status != 400 else
                         "the Origin was refused: add it to cors_allowed_origins")]
        opened = json.loads(text[1:])
        checks = [ok("socket.io polling", f"Engine.IO handshake (sid {opened['sid'][:6]}…, upgrades "
                     f"{opened.get('upgrades')})")]
        checks.append(await self.sticky(opened["sid"]))
        checks.append(await self.websocket())
        return checks

    async def sticky(self, sid: str) -> Check:
        """Several requests of one polling session must reach the same process: connect to /chat without
        a token and read the refusal back, a few times."""
        path = f"{self.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
        fix = ("the proxy sends one session's requests to different processes: make them sticky (nginx: "
               "ip_hash; or hash $remote_addr consistent; in the upstream)")
        for _ in range(STICKY_ROUNDS):
            try:
                async with self.session.post(path, data="40/chat,", headers=self._headers()) as response:
                    posted = response.status
                async with self.session.get(path, headers=self._headers()) as response:
                    status, text = response.status, await response.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                return fail("sticky sessions", f"polling failed ({exc.__class__.__name__})", fix)
            if posted != 200 or status != 200 or "44/chat" not in text:
                return fail("sticky sessions", f"a request of the session answered {posted}/{status} "
                            f"{text[:60]!r}", fix)
        return ok("sticky sessions", f"{STICKY_ROUNDS} round trips of one polling session stayed on one process")

    async def websocket(self) -> Check:
        url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        fix = ("the proxy must upgrade websockets: proxy_http_version 1.1; proxy_set_header Upgrade "
               "$http_upgrade; proxy_set_header Connection \"upgrade\"; proxy_read_timeout 75s;")
        try:
            async with self.session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket",
                                               headers=self._headers()) as ws:
                first = await ws.receive(timeout=TIMEOUT_S)
                await ws.send_str("41")  # close nicely
        except (aiohttp.ClientError, TimeoutError) as exc:
            return fail("websocket", f"upgrade refused or dropped ({exc.__class__.__name__}: {exc})", fix)
        if first.type != aiohttp.WSMsgType.TEXT or not str(first.data).startswith("0{"):
            return fail("websocket", f"no Engine.IO open packet over the websocket ({first.type})", fix)
        return ok("websocket", "the websocket transport opens (an upgrade through any proxy in between)")

    # -- CORS ------------------------------------------------------------------------------------
    async def cors(self) -> list[Check]:
        assert self.origin is not None
        fix = (f"add {self.origin} to cors_allowed_origins (AURORA_CORS_ALLOWED_ORIGINS, comma-separated), "
               "or serve the front end from the same origin")
        headers = {"Origin": self.origin, "Access-Control-Request-Method": "POST",
                   "Access-Control-Request-Headers": "content-type"}
        try:
            async with self.session.options(self.url + "/api/auth/login", headers=headers) as response:
                allowed = response.headers.get("Access-Control-Allow-Origin")
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return [fail("cors rest", f"preflight failed ({exc.__class__.__name__})", fix)]
        rest = (ok("cors rest", f"the REST API allows {self.origin}") if status < 300 and allowed == self.origin
                else fail("cors rest", f"preflight from {self.origin} answered {status}, "
                          f"Access-Control-Allow-Origin={allowed!r}", fix))
        status, text = await self._open_polling()
        socket = (ok("cors socket.io", f"Socket.IO accepts {self.origin}") if status == 200
                  else fail("cors socket.io", f"the handshake from {self.origin} answered {status} {text[:60]!r}",
                            fix))
        return [rest, socket]


def run(url: str, origin: str | None, settings: Settings) -> tuple[int, str]:
    checks = asyncio.run(Doctor(url, origin, settings).run())
    lines = [line for check in checks for line in check.lines()]
    failed = [c for c in checks if c.status == "FAIL"]
    lines.append(f"{len(checks) - len(failed)} of {len(checks)} checks passed" if not failed else
                 f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}")
    return (1 if failed else 0), "\n".join(lines)

