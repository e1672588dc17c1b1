"""The status page in a real headless Chromium (Debian's package, driven by Playwright).

No browser is downloaded: Playwright drives the system's ``chromium``.  Without
it the tests skip, except on CI (``CI`` set), where a missing browser is a failure.
Set ``UPDATE_SCREENSHOT=1`` to rewrite ``docs/status-page.png`` from a finished demo run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, suppress

import pytest

from monitor import __version__

from .harness import ROOT, Broker, MonitorProcess

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - reported by the browser fixture
    sync_playwright = None

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = ROOT / "docs" / "status-page.png"
TIME = re.compile(r"^\d\d:\d\d:\d\d$")
DEMO_LABELS = [
    "Downloaded",
    "Started",
    *(f"Task t{n:02d} {'failed' if n == 7 else 'skipped' if n == 8 else 'completed'}" for n in range(1, 13)),
    "Ended",
    "Uploaded",
    "Evaluation finished",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = None
    if sync_playwright is None:
        missing = "Playwright for Python is not installed (pip install -r requirements-test.txt)"
    elif CHROMIUM is None or not os.access(CHROMIUM, os.X_OK):
        where = CHROMIUM or "chromium on PATH"
        missing = f"no Chromium found ({where}): apt-get install chromium, or set CHROMIUM"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


class Console:
    """Everything the page said on the console at warning level or above, and uncaught errors."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.problems.append(f"pageerror: {error}"))

    def _message(self, message) -> None:
        if message.type in ("error", "warning", "assert"):
            self.problems.append(f"{message.type}: {message.text}")


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., tuple[Page, Console]]]:
    contexts = []

    def open_page(url: str, width: int = 1000, height: int = 900) -> tuple[Page, Console]:
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        console = Console(page)
        page.goto(url)
        return page, console

    yield open_page
    for context in contexts:
        context.close()


def send_demo(monitor: MonitorProcess, job: str, interval: float = 0.05) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.send",
            "--demo",
            job,
            "--interval",
            str(interval),
            "--quiet",
            "--zmq",
            monitor.zmq_address,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def watch(page: Page, job: str, press_enter: bool = False) -> None:
    page.fill("#job-id", job)
    if press_enter:
        page.press("#job-id", "Enter")
    else:
        page.click("#watch")
    expect(page.locator("#job-title")).to_have_text(job)
    expect(page.locator("#socket-state")).to_have_text("Connected.")


def event_rows(page: Page) -> list[tuple[str, str]]:
    return [
        (row.locator("time").inner_text(), row.locator("span").inner_text())
        for row in page.locator("#events li").all()
    ]


def test_a_demo_run_as_a_person_sees_it(
    open_page: Callable[..., tuple[Page, Console]],
    start_monitor: Callable[..., MonitorProcess],
    channel: str,
) -> None:
    monitor = start_monitor()
    page, console = open_page(monitor.http_url + "/")
    assert __version__ in page.title()
    expect(page.locator("#version")).to_have_text(__version__)
    expect(page.locator("#broker")).to_have_text("broker: ok")
    expect(page.locator("#connections")).to_have_text("0")
    expect(page.locator("#status-unavailable")).to_be_hidden()

    other = f"other-{channel}-never-shown"
    broker = Broker(monitor.zmq_address)
    try:
        broker.send(other, "STARTED")  # a job someone else watches: only counted, never named
        watch(page, channel)
        expect(page.locator("#progress-text")).to_have_text("Waiting for the job's first message…")
        expect(page.locator("#connections")).to_have_text("1", timeout=6000)
        send_demo(monitor, channel)
        broker.send(other, "TASK", "t01", "COMPLETED")
    finally:
        broker.close()

    final = page.locator("#final-state")
    expect(final).to_have_text("Finished: the evaluation is complete.")
    expect(final).to_have_attribute("data-state", "finished")
    expect(page.locator("#count-completed")).to_have_text("10")
    expect(page.locator("#count-failed")).to_have_text("1")
    expect(page.locator("#count-skipped")).to_have_text("1")
    expect(page.locator("#progress")).to_have_attribute("data-state", "finished")
    expect(page.locator("#progress-text")).to_have_text("12 tasks done")
    expect(page.locator("#socket-state")).to_have_text("Connection closed (1000: job finished).")
    expect(page.locator("#socket-error")).to_be_hidden()
    rows = event_rows(page)
    assert [label for _, label in rows] == DEMO_LABELS
    assert all(TIME.match(time) for time, _ in rows), rows

    # The monitor closed the finished job's socket; the channel counts show both jobs.
    expect(page.locator("#connections")).to_have_text("0", timeout=6000)
    expect(page.locator("#channels-total")).to_have_text("2")
    expect(page.locator("#channels-finished")).to_have_text("1")
    expect(page.locator("#rate-received")).to_have_text(re.compile(r"^\d+(\.\d)?$"))
    expect(page.locator("#rate-delivered")).to_have_text(re.compile(r"^\d+(\.\d)?$"))
    assert other not in page.locator("body").inner_text()
    assert other not in page.content()

    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert console.problems == []


def test_build_failure_broker_failure_and_abort(
    open_page: Callable[..., tuple[Page, Console]], monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    page, console = open_page(monitor.http_url + "/")
    final = page.locator("#final-state")

    build = f"{channel}-build"
    watch(page, build, press_enter=True)
    broker.send(build, "STARTED")
    broker.send(build, "TASK", "compile", "FAILED")
    broker.send(build, "FAILED")
    expect(final).to_have_attribute("data-state", "failed")
    broker.send(build, "FINISHED")
    expect(final).to_have_text("Finished with a build failure.")
    expect(page.locator("#progress")).to_have_attribute("data-state", "finished-failure")
    expect(page.locator("#count-failed")).to_have_text("1")

    rejected = f"{channel}-rejected"
    watch(page, rejected)
    broker.send(rejected, "FAILED")  # from the broker itself: no FINISHED follows
    expect(final).to_have_text("Failed: the job did not complete.")
    expect(page.locator("#events li span")).to_have_text(["Job failed"])

    moved = f"{channel}-moved"
    watch(page, moved)
    broker.send(moved, "STARTED")
    broker.send(moved, "TASK", "t01", "COMPLETED")
    broker.send(moved, "ABORTED")
    expect(final).to_have_attribute("data-state", "aborted")
    expect(page.locator("#count-completed")).to_have_text("0")  # the new worker starts over
    expect(page.locator("#progress")).to_have_attribute("data-state", "running")
    broker.send(moved, "STARTED")
    broker.send(moved, "TASK", "t01", "SKIPPED")
    expect(page.locator("#count-skipped")).to_have_text("1")
    expect(final).to_be_hidden()
    broker.send(moved, "FINISHED")
    expect(final).to_have_attribute("data-state", "finished")
    labels = [label for _, label in event_rows(page)]
    assert labels == [
        "Started",
        "Task t01 completed",
        "Job aborted — restarting on another worker",
        "Started",
        "Task t01 skipped",
        "Evaluation finished",
    ]
    assert console.problems == []


def test_watching_another_job_leaves_the_first(
    open_page: Callable[..., tuple[Page, Console]], monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    page, console = open_page(monitor.http_url + "/")
    first, second = f"{channel}-first", f"{channel}-second"
    watch(page, first)
    broker.send(first, "STARTED")
    expect(page.locator("#events li")).to_have_count(1)
    watch(page, second)
    expect(page.locator("#events li")).to_have_count(0)
    broker.send(first, "TASK", "t01", "COMPLETED")
    broker.send(second, "DOWNLOADED")
    expect(page.locator("#events li span")).to_have_text(["Downloaded"])
    expect(page.locator("#count-completed")).to_have_text("0")
    assert first not in page.locator("body").inner_text()
    assert console.problems == []


def test_a_reloaded_page_shows_the_finished_run_again(
    open_page: Callable[..., tuple[Page, Console]], start_monitor: Callable[..., MonitorProcess], channel: str
) -> None:
    """Watching puts the job id in the address's fragment; a reload replays the kept history.

    A monitor of its own: the shared one forgets finished jobs after 2 s, too tight for a browser.
    """
    monitor = start_monitor()
    page, console = open_page(monitor.http_url + "/")
    watch(page, channel)
    assert page.url.endswith("#" + channel)
    broker = Broker(monitor.zmq_address)
    try:
        for frames in (["STARTED"], ["TASK", "t01", "COMPLETED"], ["FINISHED"]):
            broker.send(channel, *frames)
    finally:
        broker.close()
    expect(page.locator("#final-state")).to_have_attribute("data-state", "finished")
    page.reload()
    expect(page.locator("#job-id")).to_have_value(channel)
    expect(page.locator("#events li span")).to_have_text(
        ["Started", "Task t01 completed", "Evaluation finished"]
    )
    expect(page.locator("#count-completed")).to_have_text("1")
    assert console.problems == []


def test_network_text_is_shown_as_text(
    open_page: Callable[..., tuple[Page, Console]], monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    page, console = open_page(monitor.http_url + "/")
    watch(page, channel)
    evil = '<img src=x onerror="document.title=1">'
    broker.send(channel, "TASK", evil, "COMPLETED")
    broker.send(channel, evil)
    expect(page.locator("#events li span")).to_have_text([f"Task {evil} completed", f"Message {evil}"])
    assert page.locator("#events img").count() == 0
    assert page.title() == f"recodex-monitor {__version__}"
    assert console.problems == []


def test_monitor_going_away_shows_status_unavailable_and_the_close(
    open_page: Callable[..., tuple[Page, Console]], start_monitor: Callable[..., MonitorProcess], channel: str
) -> None:
    monitor = start_monitor()
    page, _ = open_page(monitor.http_url + "/")
    expect(page.locator("#broker")).to_have_text("broker: ok")
    watch(page, channel)
    monitor.stop()
    expect(page.locator("#status-unavailable")).to_be_visible(timeout=8000)
    expect(page.locator("#stats")).to_have_class(re.compile(r"\bstale\b"))
    expect(page.locator("#socket-state")).to_have_text(re.compile(r"^Connection closed \(1001"))
    expect(page.locator("#final-state")).to_have_attribute("data-state", "interrupted")


def test_url_derivation_behind_a_proxy(
    open_page: Callable[..., tuple[Page, Console]], monitor: MonitorProcess
) -> None:
    page, console = open_page(monitor.http_url + "/")
    cases = {
        "https://host/monitor/": ("/monitor/", "https://host/monitor/status.json", "wss://host/monitor/"),
        "https://host:8443/a/b/index.html?x=1#job": (
            "/a/b/",
            "https://host:8443/a/b/status.json",
            "wss://host:8443/a/b/",
        ),
        "http://127.0.0.1:4567/": ("/", "http://127.0.0.1:4567/status.json", "ws://127.0.0.1:4567/"),
        "http://host/monitor": ("/", "http://host/status.json", "ws://host/"),
    }
    for href, (base, status, websocket) in cases.items():
        urls = page.evaluate("href => window.recodexMonitor.monitorUrls(href)", href)
        assert urls == {"base": base, "status": status, "websocket": websocket}, href
    assert console.problems == []


class PrefixProxy(socketserver.ThreadingTCPServer):
    """A reverse proxy that serves the monitor under ``/monitor/``, WebSocket upgrades included.

    It strips the prefix from the request line and then pipes bytes both ways,
    one request per connection (it asks for ``Connection: close`` unless upgrading).
    """

    daemon_threads = True
    prefix = b"/monitor/"

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        super().__init__(("127.0.0.1", 0), _ProxyConnection)


class _ProxyConnection(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        head, body = head.split(b"\r\n\r\n", 1)
        request_line, *headers = head.split(b"\r\n")
        method, target, version = request_line.split(b" ")
        if not target.startswith(PrefixProxy.prefix):
            client.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        target = target[len(PrefixProxy.prefix) - 1 :]
        if not any(line.lower().startswith(b"upgrade:") for line in headers):
            headers = [line for line in headers if not line.lower().startswith(b"connection:")]
            headers.append(b"Connection: close")
        upstream = socket.create_connection(("127.0.0.1", self.server.upstream_port))
        with closing(upstream):
            upstream.sendall(
                b"\r\n".join([b" ".join([method, target, version]), *headers]) + b"\r\n\r\n" + body
            )
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join(timeout=5)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def test_page_works_on_a_sub_path_behind_a_proxy(
    open_page: Callable[..., tuple[Page, Console]], monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    proxy = PrefixProxy(monitor.http_port)
    server = threading.Thread(target=proxy.serve_forever, daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}/monitor/"
        page, console = open_page(url)
        expect(page.locator("#version")).to_have_text(__version__)
        expect(page.locator("#broker")).to_have_text("broker: ok")
        expect(page.locator("#connections")).to_have_text(re.compile(r"^\d+$"))
        with page.expect_websocket() as opened:
            watch(page, channel)
        assert opened.value.url == url.replace("http:", "ws:")
        broker.send(channel, "STARTED")
        broker.send(channel, "FINISHED")
        expect(page.locator("#final-state")).to_have_attribute("data-state", "finished")
        expect(page.locator("#socket-state")).to_have_text("Connection closed (1000: job finished).")
        assert console.problems == []
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_usable_at_phone_width(
    open_page: Callable[..., tuple[Page, Console]], monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    page, console = open_page(monitor.http_url + "/", width=360, height=740)
    watch(page, channel)
    broker.send(channel, "TASK", "a-rather-long-task-identifier-" * 3, "COMPLETED")
    expect(page.locator("#count-completed")).to_have_text("1")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.locator("#watch").is_visible()
    assert page.locator("label[for=job-id]").inner_text() == "Job id"
    assert console.problems == []
