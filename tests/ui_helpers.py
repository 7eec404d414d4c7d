"""Helpers for the Dagster UI test: a webserver in its own process group, headless
Chromium through its command line (screenshot + rendered DOM in one start), a tiny
DOM reader and the webserver's GraphQL endpoint.

Nothing here needs a package beyond what the project already installs (requests,
Pillow); Chromium is Debian's `chromium` (`apt-get install -y chromium`).
"""

from __future__ import annotations

import contextlib
import html
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import requests

# As root Chromium needs --no-sandbox; the networking flags keep it from calling
# Google's services, which this machine's closed network refuses.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--lang=en-US",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- processes --------------------------------------------------------------------


def start_group(cmd: list[str], *, env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen:
    """Start `cmd` as the leader of a new process group (so its children can be ended with it)."""
    log = open(log_path, "wb")  # noqa: SIM115 - closed in stop_group
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc._log_file = log  # type: ignore[attr-defined]
    return proc


def stop_group(proc: subprocess.Popen, *, grace_s: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace_s`.

    The webserver's code server is a child in the same group; Dagster shuts down
    gracefully on SIGTERM but can take several seconds.
    """
    pgid = proc.pid  # leader of its own session, so its pid is the group id
    _signal_group(pgid, signal.SIGTERM)
    if not _wait_gone(proc, pgid, grace_s):
        _signal_group(pgid, signal.SIGKILL)
        _wait_gone(proc, pgid, 5.0)
    log = getattr(proc, "_log_file", None)
    if log is not None:
        log.close()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_gone(proc: subprocess.Popen, pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return True
        time.sleep(0.2)
    return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def wait_for_http(url: str, *, proc: subprocess.Popen, timeout_s: float, log_path: Path) -> float:
    """Poll `url` until it answers 200; fail early if `proc` exits. Returns seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            raise AssertionError(f"the webserver exited with {proc.returncode}:\n{tail(log_path)}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout_s:.0f} s:\n{tail(log_path)}")


def tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"


# --- GraphQL ------------------------------------------------------------------------


def graphql(base_url: str, query: str, variables: dict | None = None, *, timeout_s: float = 60.0) -> dict:
    resp = requests.post(f"{base_url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout_s)
    resp.raise_for_status()
    body = resp.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


# --- Chromium -------------------------------------------------------------------------


@dataclass
class Capture:
    url: str
    png: Path
    dom: str
    seconds: float
    attempts: int

    @property
    def page(self) -> Page:
        return Page.parse(self.dom)


def capture(
    chromium: str,
    url: str,
    png: Path,
    *,
    profile_root: Path,
    ready: Callable[[Page], bool] = lambda _p: True,
    window: tuple[int, int] = (1400, 900),
    budgets_ms: tuple[int, ...] = (15_000, 30_000),
    timeout_s: float = 90.0,
) -> Capture:
    """Load `url` in headless Chromium, save a screenshot to `png` and return the rendered DOM.

    `--virtual-time-budget` lets the React app fetch its GraphQL data and render
    before the screenshot and the DOM dump are taken (both come from the same
    load). If `ready` is not yet true of the DOM, the page is loaded again with a
    longer budget.
    """
    started = time.monotonic()
    dom = ""
    for attempt, budget in enumerate(budgets_ms, start=1):
        profile = profile_root / f"chromium-profile-{png.stem}-{attempt}"
        shutil.rmtree(profile, ignore_errors=True)
        png.unlink(missing_ok=True)
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={window[0]},{window[1]}",
            f"--virtual-time-budget={budget}",
            f"--screenshot={png}",
            "--dump-dom",
            url,
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"chromium did not finish {url} within {timeout_s:.0f} s") from None
        finally:
            _signal_group(proc.pid, signal.SIGKILL)  # any helper process left behind
            shutil.rmtree(profile, ignore_errors=True)
        dom = out.decode("utf-8", "replace")
        png.with_suffix(".html").write_text(dom, encoding="utf-8")  # kept next to the screenshot for debugging
        if proc.returncode != 0:
            raise AssertionError(
                f"chromium exited {proc.returncode} on {url}:\n{err.decode('utf-8', 'replace')[-3000:]}"
            )
        if png.exists() and ready(Page.parse(dom)):
            return Capture(url, png, dom, time.monotonic() - started, attempt)
    return Capture(url, png, dom, time.monotonic() - started, len(budgets_ms))


# --- a tiny DOM reader ------------------------------------------------------------------------


# Hidden copies of a label that Dagster renders to measure truncation.
HIDDEN_CLASS_PREFIXES = ("MiddleTruncate_measure__",)


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def text(self) -> str:
        """Visible text, whitespace-collapsed. Skips the hidden copies Dagster renders to measure
        truncated labels (`MiddleTruncate_measure…`), so a label reads once."""
        parts = []
        for c in self.children:
            if isinstance(c, str):
                parts.append(c)
            elif not any(k.startswith(HIDDEN_CLASS_PREFIXES) for k in c.classes):
                parts.append(c.text())
        return " ".join(" ".join(parts).split())

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Element):
                yield from c.iter()


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        el = Element(tag, {k: (v or "") for k, v in attrs})
        self.stack[-1].children.append(el)
        if tag not in _VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Element(tag, {k: (v or "") for k, v in attrs}))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if data.strip() and self.stack[-1].tag not in ("script", "style"):
            self.stack[-1].children.append(data)


@dataclass
class Page:
    root: Element

    @classmethod
    def parse(cls, dom: str) -> Page:
        b = _TreeBuilder()
        b.feed(dom)
        return cls(b.root)

    def by_class_prefix(self, prefix: str) -> list[Element]:
        """Elements with a CSS-module class `prefix…` (Dagster's classes end in a build hash)."""
        return [e for e in self.root.iter() if any(c.startswith(prefix) for c in e.classes)]

    def by_tag(self, tag: str) -> list[Element]:
        return [e for e in self.root.iter() if e.tag == tag]

    def text(self) -> str:
        body = next((e for e in self.root.iter() if e.tag == "body"), self.root)
        return html.unescape(body.text())


# --- PNG ----------------------------------------------------------------------------------


def png_facts(path: Path) -> dict:
    """Size, format and a measure of how much is drawn (distinct colours in a downscaled copy)."""
    from PIL import Image

    data = path.read_bytes()
    with Image.open(path) as im:
        small = im.convert("RGB").resize((350, 225))
        colors = small.getcolors(maxcolors=350 * 225) or []
        return {
            "magic_ok": data[:8] == b"\x89PNG\r\n\x1a\n",
            "bytes": len(data),
            "size": im.size,
            "distinct_colors": len(colors),
            "dominant_share": max(n for n, _ in colors) / (350 * 225) if colors else 1.0,
        }
