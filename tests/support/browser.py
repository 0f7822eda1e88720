"""A live server and a real browser: the app served by waitress on loopback, Debian's
chromium, and axe-core (from npm) for accessibility checks."""

from __future__ import annotations

from pathlib import Path

from tests.support.instance import REPO, need

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


class LiveServer:
    """The real app served by waitress on a free loopback port, in a background thread."""

    def __init__(self, app):
        import socket
        import threading

        from waitress.server import create_server

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.server = create_server(app, host="127.0.0.1", port=self.port, threads=4)
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.close()


# ---- accessibility: axe-core from npm, evaluated in the page ------------------------------------
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(pg) -> list[dict]:
    """Serious and critical axe-core violations of the page (WCAG 2.1 A/AA, best practices).

    axe is evaluated through the browser's debugging protocol rather than added as a script
    tag: the site's Content-Security-Policy (rightly) refuses inline script.
    """
    need(AXE.exists(), f"{AXE} missing (run `npm ci` at the repository root)")
    pg.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = pg.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]
