"""`dvc plots show` as a page that needs no network: dvc-render's page with the Vega scripts inline.

dvc-render loads vega@5.20.2, vega-lite@5.2.0 and vega-embed@6.18.2 from a CDN, so on an offline machine every
interactive plot is blank. The same builds ship in ``static/vega/``; the page template here inlines them and leaves
out dvc-render's ``{scripts}`` placeholder, through which the CDN tags would come in.
"""

from __future__ import annotations

import re
from importlib.resources import files

VEGA_SCRIPTS = ("vega-5.20.2.min.js", "vega-lite-5.2.0.min.js", "vega-embed-6.18.2.min.js")

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>Dreaming Data: plots</title>
    {inline_scripts}
    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>"""


def offline_template() -> str:
    """The HTML template for ``dvc plots show --html-template``: every script inline, none from the network."""
    folder = files("dreaming_data").joinpath("static", "vega")
    scripts = "\n".join(f"<script>\n{folder.joinpath(name).read_text(encoding='utf8')}\n</script>"
                        for name in VEGA_SCRIPTS)
    return PAGE.replace("{inline_scripts}", scripts)


def remote_references(html: str) -> list[str]:
    """Every script, stylesheet or image the page would fetch from the network."""
    return re.findall(r"""<(?:script|img|link)\b[^>]*\b(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""", html)
