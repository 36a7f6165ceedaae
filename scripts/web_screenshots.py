"""Regenerate the web page's screenshots in docs/images/web-*.png (used by docs/web.md).

They are taken by the browser tests of the page (tests/service/test_web_page.py,
Playwright driving Debian's Chromium) when RAGKIT_WEB_SCREENSHOTS=1::

    .venv/bin/python scripts/web_screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Run the three browser tests that take screenshots; returns pytest's exit status."""
    env = {**os.environ, "RAGKIT_WEB_SCREENSHOTS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    tests = "ask_streams or pdf_citation or upload_shows"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/service/test_web_page.py",
        "-k",
        tests,
    ]
    return subprocess.call(command, env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
