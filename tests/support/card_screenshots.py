"""Screenshots of the card gallery in headless Chromium: one per sample card, both languages.

`python -m tests.support.card_screenshots [OUT_DIR]` writes `<sample>.png` for every gallery
sample (the Dutch and English card side by side) and `gallery.html` into OUT_DIR (default
var/card-screenshots). tests/functional/test_card_gallery.py takes the same screenshots and
checks them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cds_service.cards.catalogue import load_catalogue
from cds_service.cards.gallery import SAMPLES, gallery_cards, render_gallery
from cds_service.rules.knowledge import load_knowledge
from cds_service.shipped import CARDS_DIR, MAPPINGS_DIR

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WIDTH, HEIGHT = 1280, 1800
BASE_URL = "https://cds.example.org/lumbar"


def find_browser() -> str | None:
    """The first Chromium on the PATH (or /usr/bin/chromium), if any."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def screenshot(
    browser: str, page: Path, shot: Path, width: int = WIDTH, height: int = HEIGHT
) -> Path:
    """Render a local HTML file in headless Chromium into a PNG of width x height."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(  # noqa: S603 - fixed arguments, a local file
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                f"--window-size={width},{height}",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    if not shot.is_file():
        raise RuntimeError(result.stderr.decode(errors="replace")[-2000:])
    return shot


def shoot_gallery(
    browser: str, out_dir: Path, names: tuple[str, ...] | None = None
) -> dict[str, Path]:
    """One screenshot per gallery sample (or the `names` given): {sample name: PNG path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    catalogue = load_catalogue(CARDS_DIR)
    knowledge = load_knowledge(MAPPINGS_DIR)
    entries = gallery_cards(catalogue, knowledge, BASE_URL)
    (out_dir / "gallery.html").write_text(render_gallery(entries), encoding="utf-8")
    shots = {}
    for sample in SAMPLES:
        if names is not None and sample.name not in names:
            continue
        page = out_dir / f"{sample.name}.html"
        page.write_text(
            render_gallery([e for e in entries if e["name"] == sample.name]), encoding="utf-8"
        )
        shots[sample.name] = screenshot(browser, page, out_dir / f"{sample.name}.png")
    return shots


def main(argv: list[str]) -> int:
    """Write the screenshots into the folder named on the command line."""
    out_dir = Path(argv[0]) if argv else Path("var") / "card-screenshots"
    browser = find_browser()
    if browser is None:
        print("no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    for name, shot in shoot_gallery(browser, out_dir).items():
        print(f"{name}: {shot}")
    print(f"gallery: {out_dir / 'gallery.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
