"""The report in a real browser: it shows the plots, and it fetches nothing from anywhere."""

from __future__ import annotations

import base64
import html as html_lib
import http.server
import io
import json
import re
import threading
from pathlib import Path

import pytest
from PIL import Image

from tests.report.browser import dump_dom, screenshot
from tests.report.test_page_and_plots import EXTERNAL

pytestmark = pytest.mark.slow

PLOT_BLUE = (0x1F, 0x77, 0xB4)  # the train series in every figure (plots.TRAIN)
PLOT_ORANGE = (0xFF, 0x7F, 0x0E)  # the valid series (plots.VALID)


def _count_near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    return sum(
        count
        for count, pixel in image.getcolors(maxcolors=1 << 24)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour))
    )


def _report(trained, job: str) -> Path:
    result = trained.cli("report", job, "--json")
    assert result.returncode == 0, result.stderr
    return Path(json.loads(result.stdout)["report_uri"])


def test_the_page_shows_its_plots_in_chromium(trained, chromium, tmp_path):
    page = _report(trained, trained.healthy)
    shot = screenshot(chromium, page, tmp_path / "report.png", width=1200, height=3000)
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
    total = rgb.width * rgb.height
    white = _count_near(rgb, (255, 255, 255), tolerance=3)
    # Not blank: a blank or failed page is (nearly) all white; ours is text, tables and plots.
    assert 1 - white / total > 0.05, f"only {1 - white / total:.1%} of {shot} is not white"
    # The plots rendered (not broken-image icons): their line colours are on screen.
    assert _count_near(rgb, PLOT_BLUE) > 2000 and _count_near(rgb, PLOT_ORANGE) > 500, shot
    print(f"screenshot: {shot}")


class _Probe(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        _Probe.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def probe():
    """A web server on 127.0.0.1 that counts the requests it gets."""
    _Probe.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Probe.hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_page_references_nothing_outside_and_its_policy_blocks_what_would(trained, chromium, probe, tmp_path):
    page = _report(trained, trained.healthy)
    html = page.read_text()
    assert not EXTERNAL.search(html)
    assert re.search(r'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:', html)
    # Plant an external image in a copy and load it for real: the policy must stop the request...
    url, hits = probe
    planted = html.replace("<body>", f'<body><img src="{url}/planted.png" alt="">', 1)
    guarded = tmp_path / "guarded.html"
    guarded.write_text(planted)
    screenshot(chromium, guarded, tmp_path / "guarded.png", height=600)
    assert hits == []
    # ...and without the policy the same page does fetch it, so the probe can see a request.
    open_page = tmp_path / "open.html"
    open_page.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", planted))
    screenshot(chromium, open_page, tmp_path / "open.png", height=600)
    assert hits == ["/planted.png"]


# Reads every picture of the evaluation sections once the page has loaded: decoded (complete,
# with pixels) and at what size, into an attribute --dump-dom shows. Only this instrumented
# copy runs a script; the policy still forbids any fetch (default-src 'none').
_DECODE_PROBE = """<script>
addEventListener("load", () => {
  const seen = [...document.querySelectorAll("#worst-mistakes img, #reliability img")].map(
    (img) => [img.closest("[id]").id, img.complete && img.naturalWidth > 0, img.naturalWidth, img.naturalHeight]);
  document.body.setAttribute("data-decoded", JSON.stringify(seen));
});
</script>"""


def test_the_evaluation_sections_render_offline_and_their_thumbnails_decode(trained, chromium, probe, tmp_path):
    page = _report(trained, trained.diverged)  # lr 50: test photos it got wrong, with thumbnails
    html = page.read_text()
    thumbnails = re.findall(r'<section id="worst-mistakes">.*?</section>', html, re.S)[0]
    expected = []
    for data in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', thumbnails):
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            expected.append(["worst-mistakes", True, *image.size])
    assert len(expected) == len(trained.evaluation(trained.diverged)["worst_mistakes"]) > 0
    instrumented = html.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    instrumented = instrumented.replace("</body>", _DECODE_PROBE + "</body>", 1)
    copy = tmp_path / "instrumented.html"
    copy.write_text(instrumented)
    url, hits = probe
    dom = dump_dom(chromium, copy, proxy=url)
    decoded = json.loads(html_lib.unescape(re.search(r'data-decoded="([^"]*)"', dom).group(1)))
    assert [d for d in decoded if d[0] == "worst-mistakes"] == expected
    (reliability,) = [d for d in decoded if d[0] == "reliability"]
    assert reliability[1] is True and reliability[2] >= 800
    assert hits == []  # nothing was fetched from anywhere: every request would have come here
    # The probe does see a fetch through the proxy, so the empty list above means something.
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><html><body><img src="http://example.com/leak.png"></body></html>')
    dump_dom(chromium, leaky, proxy=url)
    assert hits and "leak.png" in hits[0]
