"""「識別精度の変遷」 as a PNG, drawn on the server with Pillow, to paste into a notebook or a slide.

Why Pillow: the site draws its charts as inline SVG for the browser, and a notebook takes an image.
Rasterising that SVG needs cairo (a C library in the web image) or a browser; matplotlib would
bring a plotting stack the web service never otherwise uses, for one chart. Pillow draws lines,
dots and text in a few dozen lines and is a single wheel.

What it shows: each scored submission's test accuracy (a line of dots, values written on it), the
validation accuracy the trainee measured beside it (dashed), the pass line, and below the plot
what the trainee said they changed, by submission. The y axis fits the scores (as the page's
chart does) and says where it starts. Japanese text needs a font with Japanese glyphs: the
``chart_font`` setting, else the usual Debian/Ubuntu fonts; without one the labels are English.
"""

from __future__ import annotations

import functools
import io
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from app.i18n import Translator
from app.services.history import History, HistoryRow
from app.web.charts import axis_label, nice_axis

log = logging.getLogger(__name__)

# Debian/Ubuntu packages with Japanese glyphs: fonts-ipafont-gothic (what the Dockerfile and
# scripts/setup.sh install), fonts-ipaexfont-gothic, fonts-noto-cjk.
FONT_CANDIDATES = (
    Path("/usr/share/fonts/opentype/ipafont-gothic/ipagp.ttf"),
    Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"),
    Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/fonts-japanese-gothic.ttf"),
)
WIDTH, PLOT_HEIGHT = 1280, 560
LEFT, RIGHT, TOP = 96, 48, 130
NOTE_LINE = 30
MAX_NOTES = 12  # the rest are in the CSV, and the image stays the height of a slide
TEST_COLOUR, VALIDATION_COLOUR, PASS_COLOUR = (37, 99, 235), (234, 88, 12), (146, 64, 14)
INK, MUTED, GRID = (17, 17, 17), (85, 85, 85), (225, 225, 225)


@functools.lru_cache(maxsize=4)
def font_path(configured: Path | None) -> Path | None:
    """The font with Japanese glyphs to draw with (None: none found, labels in English)."""
    for path in (configured, *FONT_CANDIDATES):
        if path is not None and path.is_file():
            return path
    log.warning("no font with Japanese glyphs (set KATAKANA_CHART_FONT): history charts are labelled in English")
    return None


@dataclass(frozen=True)
class _Fonts:
    title: ImageFont.FreeTypeFont | ImageFont.ImageFont
    label: ImageFont.FreeTypeFont | ImageFont.ImageFont
    small: ImageFont.FreeTypeFont | ImageFont.ImageFont


def _fonts(path: Path | None) -> _Fonts:
    if path is None:
        return _Fonts(*(ImageFont.load_default(size) for size in (30, 20, 17)))
    return _Fonts(*(ImageFont.truetype(str(path), size) for size in (30, 20, 17)))


Point = tuple[float, float]
Colour = tuple[int, int, int]


def _dashed(draw: ImageDraw.ImageDraw, start: Point, end: Point, colour: Colour, width: int, dash: float = 12) -> None:
    """A dashed line (Pillow draws only solid ones): dashes of ``dash`` pixels, gaps two thirds of that."""
    (x0, y0), (x1, y1) = start, end
    length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 or 1.0

    def at(d: float) -> Point:
        return (x0 + (x1 - x0) * d / length, y0 + (y1 - y0) * d / length)

    done = 0.0
    while done < length:
        stop = min(done + dash, length)
        draw.line([at(done), at(stop)], fill=colour, width=width)
        done = stop + dash * 2 / 3


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> str:
    """``text`` cut to ``width`` pixels, with an ellipsis when cut (the CSV has it whole)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _note_lines(rows: Sequence[HistoryRow], t: Translator) -> list[str]:
    noted = [row for row in rows if row.change_note]
    lines = [
        f"#{row.submission_id}  {row.submitted_at:%m/%d}  "
        + (_pct(row.test_accuracy) if row.test_accuracy is not None else t(f"status_{row.status.value}"))
        + f"  {row.change_note}"
        for row in noted[-MAX_NOTES:]
    ]
    if len(noted) > MAX_NOTES:
        lines.insert(0, t("history_png_more_notes", n=len(noted) - MAX_NOTES))
    return lines


def history_png(found: History, t: Translator, font: Path | None) -> bytes:
    """The chart as PNG bytes, labelled in ``t``'s language (English when no Japanese font)."""
    if font is None:
        t = Translator("en")
    fonts = _fonts(font)
    scored = found.scored
    notes = _note_lines(found.rows, t)
    height = TOP + PLOT_HEIGHT + 70 + (NOTE_LINE * (len(notes) + 1) + 20 if notes else 0)
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)

    draw.text((LEFT - 60, 24), f"{t('history_chart')} — {found.trainee} ({found.cohort})", font=fonts.title, fill=INK)
    values = [r.test_accuracy for r in scored if r.test_accuracy is not None]
    values += [r.validation_accuracy for r in scored if r.validation_accuracy is not None]
    low, high, step = nice_axis(values + ([found.pass_line] if found.pass_line is not None else []) or [0.0, 1.0])
    subtitle = t("history_png_axis", low=axis_label(low, step), high=axis_label(high, step))
    draw.text((LEFT - 60, 66), subtitle, font=fonts.small, fill=MUTED)

    plot_w, top, bottom = WIDTH - LEFT - RIGHT, TOP, TOP + PLOT_HEIGHT - 60
    span = (high - low) or 1.0

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (max(low, min(high, value)) - low) / span

    for k in range(round((high - low) / step) + 1):
        y = y_of(low + k * step)
        draw.line([(LEFT, y), (LEFT + plot_w, y)], fill=GRID, width=1)
        draw.text((LEFT - 10, y), axis_label(low + k * step, step), font=fonts.label, fill=MUTED, anchor="rm")
    draw.line([(LEFT, top), (LEFT, bottom)], fill=MUTED, width=1)

    if found.pass_line is not None:
        y = y_of(found.pass_line)
        _dashed(draw, (LEFT, y), (LEFT + plot_w, y), PASS_COLOUR, 2)
        label = t("chart_pass_line", threshold=_pct(found.pass_line))
        draw.text((LEFT + plot_w, y - 6), label, font=fonts.small, fill=PASS_COLOUR, anchor="rb")

    if not scored:
        draw.text(
            (LEFT + plot_w / 2, (top + bottom) / 2), t("history_empty"), font=fonts.label, fill=MUTED, anchor="mm"
        )
    else:
        n = len(scored)
        step_x = plot_w / n
        xs = [LEFT + step_x * (i + 0.5) for i in range(n)]
        label_every = max(1, -(-n // 12))
        test_points = [(x, y_of(r.test_accuracy or 0.0)) for x, r in zip(xs, scored, strict=True)]
        validation_points = [
            (x, y_of(r.validation_accuracy))
            for x, r in zip(xs, scored, strict=True)
            if r.validation_accuracy is not None
        ]
        for a, b in itertools.pairwise(validation_points):
            _dashed(draw, a, b, VALIDATION_COLOUR, 3)
        if len(test_points) > 1:
            draw.line(test_points, fill=TEST_COLOUR, width=4, joint="curve")
        for x, y in test_points:
            draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=TEST_COLOUR)
        for x, y in validation_points:
            draw.rectangle([x - 6, y - 6, x + 6, y + 6], outline=VALIDATION_COLOUR, width=3, fill="white")
        for i, ((x, y), row) in enumerate(zip(test_points, scored, strict=True)):
            if i % label_every == 0 or i == n - 1:
                draw.text((x, y - 14), _pct(row.test_accuracy or 0.0), font=fonts.small, fill=TEST_COLOUR, anchor="mb")
                draw.text((x, bottom + 12), f"#{row.submission_id}", font=fonts.small, fill=INK, anchor="mt")
                draw.text((x, bottom + 34), f"{row.submitted_at:%m/%d}", font=fonts.small, fill=MUTED, anchor="mt")

    legend_y = 100
    x = LEFT
    for colour, text, dashed in (
        (TEST_COLOUR, t("history_png_test"), False),
        (VALIDATION_COLOUR, t("history_png_validation"), True),
        (PASS_COLOUR, t("history_png_pass"), True),
    ):
        if dashed:
            _dashed(draw, (x, legend_y), (x + 40, legend_y), colour, 3, dash=8)
        else:
            draw.line([(x, legend_y), (x + 40, legend_y)], fill=colour, width=4)
        draw.text((x + 50, legend_y), text, font=fonts.small, fill=INK, anchor="lm")
        x += 50 + draw.textlength(text, font=fonts.small) + 40

    if notes:
        y = TOP + PLOT_HEIGHT + 40
        draw.text((LEFT - 60, y), t("history_png_notes"), font=fonts.label, fill=INK)
        for line in notes:
            y += NOTE_LINE
            draw.text((LEFT - 40, y), _fit(draw, line, fonts.small, WIDTH - LEFT), font=fonts.small, fill=INK)

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
