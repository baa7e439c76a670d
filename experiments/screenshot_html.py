"""Render a report.html in headless Chromium (Debian's `chromium` package) and save a screenshot, to check the
page in a real browser: every figure shows, tables lay out.

    python experiments/screenshot_html.py results/synthetic-demo/analysis/report.html --out shot.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("page", type=Path)
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--size", default="1200,4000", help="window width,height in pixels")
    a = p.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("error: chromium not found (apt-get install chromium)", file=sys.stderr)
        return 2
    if not a.page.is_file():
        print(f"error: {a.page} not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={a.size}",
               f"--screenshot={a.out.resolve()}", a.page.resolve().as_uri()]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not a.out.is_file():
        print(f"error: chromium failed ({done.returncode}): {done.stderr.strip()[-300:]}", file=sys.stderr)
        return 2
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
