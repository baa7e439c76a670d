"""report.html: an analysis folder's report.md as one self-contained page, every figure embedded."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from jinja2 import Environment
from markdown_it import MarkdownIt

from facexai.errors import DataNotFoundError
from facexai.io.files import atomic_write_text

PAGE = Environment(autoescape=False).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; height: auto; }
h1, h2 { border-bottom: 1px solid #ddd; }
</style></head>
<body>
{{ body }}
<p><small>Written by facexai from <code>report.md</code> and the figures beside it.</small></p>
</body></html>
""")


def write_html(folder: str | Path) -> Path:
    """report.html from <folder>/report.md: markdown rendered (tables included), every PNG it shows embedded."""
    folder = Path(folder)
    md = folder / "report.md"
    if not md.is_file():
        raise DataNotFoundError(f"{md} not found; run `facexai report {folder}` first")
    text = md.read_text()
    body = MarkdownIt("commonmark").enable("table").render(text)

    def embed(m: re.Match) -> str:
        path = folder / m.group(1)
        if not path.is_file():
            raise DataNotFoundError(f"{md} shows {m.group(1)}, which is not in {folder}")
        return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'

    body = re.sub(r'src="([^":]+\.png)"', embed, body)
    title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), "facexai report")
    return Path(atomic_write_text(folder / "report.html", PAGE.render(title=title, body=body)))
