"""The report as one self-contained HTML page (pure: data in, a string out).

Self-contained means it opens from a laptop, an S3 console download or a CI artefact with
no network: figures are inline base64 PNGs, the style is inline, there is no script, and a
Content-Security-Policy forbids the browser to fetch anything but data: images, so a
stray external reference would fail loudly in a test instead of phoning home quietly.
Every piece of text from records or AWS is escaped.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from dogbreed.report.rules import ISSUE, NO_DATA, NOT_APPLICABLE, OK, RuleResult

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1060px;
       color: #1d232a; background: #fff; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #dde2e7; }
table { border-collapse: collapse; margin: 8px 0; width: 100%; } td, th { padding: 5px 8px; text-align: left;
       border-bottom: 1px solid #eceff2; vertical-align: top; } th { background: #f5f7f9; }
table.facts td:first-child { color: #5b6670; width: 180px; }
.status { font-weight: 600; border-radius: 4px; padding: 1px 7px; white-space: nowrap; }
.ok { background: #dcf5e3; color: #14622e; } .issue { background: #fde0de; color: #98160e; }
.not-applicable, .no-data, .other { background: #eceff2; color: #4c5660; }
figure { margin: 16px 0; } figure img { max-width: 100%; border: 1px solid #eceff2; }
figcaption { color: #5b6670; font-size: 13px; } .note { color: #5b6670; font-size: 13px; }
.verdict { font-size: 15px; font-weight: 600; background: #fff6dc; border-left: 4px solid #e0a800; padding: 8px 12px; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; } .gallery figure { margin: 0; width: 150px; }
.gallery img { width: 96px; height: 96px; object-fit: contain; background: #f5f7f9; }
.gallery .missing { display: block; width: 96px; height: 96px; background: #eceff2; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
"""
# What the job's thumbnails are: base64 JPEG/PNG data: URIs. Anything else is not rendered.
_DATA_IMAGE = re.compile(r"data:image/(?:jpeg|png);base64,[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True)
class Image:
    name: str  # also the PNG's file name without .png
    caption: str
    png: bytes


@dataclass(frozen=True)
class Table:
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    note: str = ""
    numeric: Sequence[int] = ()  # column positions to right-align (numbers line up)
    id: str = ""  # the section's anchor, for links and tests


@dataclass(frozen=True)
class Thumb:
    data_uri: str | None  # data:image/jpeg;base64,... as the job wrote it; None: no picture
    lines: Sequence[str]  # the caption, one line each


@dataclass(frozen=True)
class Gallery:
    title: str
    thumbs: Sequence[Thumb]
    note: str = ""
    id: str = ""


@dataclass(frozen=True)
class Paragraph:
    text: str


Block = Union[Table, Image, Gallery, Paragraph]


def is_data_image(uri: object) -> bool:
    """Whether `uri` is an inline base64 JPEG/PNG, the only kind of picture the page shows."""
    return isinstance(uri, str) and _DATA_IMAGE.fullmatch(uri) is not None


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _status(status: str) -> str:
    css = status if status in (OK, ISSUE, NOT_APPLICABLE, NO_DATA) else "other"
    return f'<span class="status {css}">{_e(status)}</span>'


def _facts(facts: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><td>{_e(key)}</td><td>{_e(value)}</td></tr>" for key, value in facts)
    return f'<table class="facts">{rows}</table>'


def _rules(title: str, results: Sequence[RuleResult]) -> str:
    rows = "".join(
        f"<tr><td>{_e(r.name)}</td><td>{_status(r.status)}</td><td>{_e(r.detail)}</td><td>{_e(r.advice)}</td></tr>"
        for r in results
    )
    head = "<tr><th>rule</th><th>verdict</th><th>what it saw</th><th>what to do</th></tr>"
    return f'<h2>{_e(title)}</h2><table class="rules">{head}{rows}</table>'


def _cell(tag: str, text: object, position: int, numeric: Sequence[int]) -> str:
    css = ' class="num"' if position in numeric else ""
    return f"<{tag}{css}>{_e(text)}</{tag}>"


def _id(name: str) -> str:
    return f' id="{_e(name)}"' if name else ""


def _table(table: Table) -> str:
    head = "".join(_cell("th", column, i, table.numeric) for i, column in enumerate(table.columns))
    rows = "".join(
        "<tr>" + "".join(_cell("td", cell, i, table.numeric) for i, cell in enumerate(row)) + "</tr>" for row in table.rows
    )
    note = f'<p class="note">{_e(table.note)}</p>' if table.note else ""
    return f"<section{_id(table.id)}><h2>{_e(table.title)}</h2><table><tr>{head}</tr>{rows}</table>{note}</section>"


def _thumb(thumb: Thumb) -> str:
    if is_data_image(thumb.data_uri):
        picture = f'<img alt="{_e(thumb.lines[0] if thumb.lines else "")}" src="{thumb.data_uri}">'
    else:
        picture = '<span class="missing" title="no thumbnail"></span>'
    caption = "<br>".join(_e(line) for line in thumb.lines)
    return f"<figure>{picture}<figcaption>{caption}</figcaption></figure>"


def _gallery(gallery: Gallery) -> str:
    note = f'<p class="note">{_e(gallery.note)}</p>' if gallery.note else ""
    items = "".join(_thumb(thumb) for thumb in gallery.thumbs)
    return f'<section{_id(gallery.id)}><h2>{_e(gallery.title)}</h2>{note}<div class="gallery">{items}</div></section>'


def _block(block: Block) -> str:
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Gallery):
        return _gallery(block)
    if isinstance(block, Image):
        return _image(block)
    return f'<p class="note">{_e(block.text)}</p>'


def _image(image: Image) -> str:
    data = base64.b64encode(image.png).decode("ascii")
    return (
        f'<figure id="{_e(image.name)}"><img alt="{_e(image.caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(image.caption)}</figcaption></figure>"
    )


def render(
    title: str,
    facts: Sequence[tuple[str, str]],
    rules: Sequence[RuleResult] = (),
    images: Sequence[Image] = (),
    tables: Sequence[Table] = (),
    notes: Sequence[str] = (),
    links: Sequence[tuple[str, str]] = (),
    rules_title: str = "Rules",
    verdict: str = "",
    summary: Sequence[Block] = (),
    sections: Sequence[Block] = (),
) -> str:
    """The whole page, top to bottom: the verdict, facts, `summary` blocks, rules, `sections`
    (the test evaluation), `tables`, plots, files and notes. `links` are (label, relative
    path) to files saved beside the page (or other reports of the same workspace)."""
    ours = [r for r in rules if r.source == "dogbreed"]
    theirs = [r for r in rules if r.source != "dogbreed"]
    parts = [f"<h1>{_e(title)}</h1>"]
    if verdict:
        parts.append(f'<p class="verdict" id="verdict">{_e(verdict)}</p>')
    parts.append(_facts(facts))
    parts += [_block(block) for block in summary]
    if ours:
        parts.append(_rules(rules_title, ours))
    if theirs:
        parts.append(_rules("SageMaker Debugger rules", theirs))
    parts += [_block(block) for block in sections]
    parts += [_table(table) for table in tables]
    if images:
        parts.append("<h2>Plots</h2>")
        parts += [_image(image) for image in images]
    if links:
        items = "".join(f'<li><a href="{_e(href)}">{_e(label)}</a></li>' for label, href in links)
        parts.append(f"<h2>Files</h2><ul>{items}</ul>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(note)}</li>" for note in notes) + "</ul>")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
