"""Looking at a run report in a real browser (tests of issue 14): headless Chromium takes a screenshot of
the page with every network route closed, and the screenshot's pixels are counted by colour.

`CHROMIUM` is the browser found on PATH (Debian's `chromium`), or None: the screenshot tests skip then.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
OFFLINE = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--proxy-server=127.0.0.1:9",  # a closed port: any request for the network fails
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
COLOURS = {  # what the report draws: DAG outlines (succeeded), matplotlib's first three line colours
    "dag green": (46, 125, 50),
    "line blue": (31, 119, 180),
    "line orange": (255, 127, 14),
    "line green": (44, 160, 44),
}


def screenshot(page: Path, png: Path, size: str = "1200,3000") -> Path:
    """`page` as headless Chromium draws it, offline, into `png`."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        cmd = [CHROMIUM, *OFFLINE, f"--user-data-dir={profile}", f"--window-size={size}", f"--screenshot={png}"]
        done = subprocess.run([*cmd, page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert png.is_file() and png.stat().st_size > 10_000, done.stderr[-2000:]
    return png


def colours_in(png: Path, tolerance: int = 24) -> dict[str, int]:
    """How many pixels of the screenshot are within `tolerance` of each colour of COLOURS."""
    import numpy as np
    from matplotlib.image import imread

    pixels = (imread(png)[..., :3] * 255).astype(int)
    return {
        name: int((np.abs(pixels - np.array(rgb)).max(axis=-1) <= tolerance).sum()) for name, rgb in COLOURS.items()
    }
