"""Seal detection on an opened PDF: signature fields, red round vector drawings, red round images.

An official seal (公章) is a red ring with text and a star. We look for it in three places, in
order of cost: an `/FT /Sig` field with a visible appearance, a red path made of curves whose
bounding box is about square, and a red, round, mostly hollow blob in an embedded image.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageChops, ImageFilter
from pypdf import PdfReader
from pypdf.generic import ContentStream, DictionaryObject, StreamObject

from parsers.model import Problem, Seal

#: Images bigger than this (declared or real) are not decoded: a scan of A3 at 600 dpi is ~70 MP.
MAX_IMAGE_PIXELS = 80_000_000
#: Long side, in pixels, of the red mask we build before looking for shapes (speed vs. detail).
MASK_SIDE = 800
#: Long side of the coarse grid on which connected red blobs are found.
GRID_SIDE = 240
#: A content stream with more operations than this is not scanned for vector seals.
MAX_CONTENT_OPERATIONS = 500_000
#: How deep Form XObjects may nest before we stop following them.
MAX_XOBJECT_DEPTH = 6

_CURVE_OPERATORS = {b"c", b"v", b"y"}
_STROKE_PAINT = {b"S", b"s"}
_FILL_PAINT = {b"f", b"F", b"f*"}
_BOTH_PAINT = {b"B", b"B*", b"b", b"b*"}
_PATH_START = {b"m", b"re"}


class Deadline:
    """A wall-clock budget shared by the steps that read one PDF."""

    def __init__(self, seconds: float) -> None:
        self.expires_at = time.monotonic() + seconds
        self.seconds = seconds

    def passed(self) -> bool:
        """Whether the budget is spent."""
        return time.monotonic() >= self.expires_at


@dataclass(frozen=True)
class RedRoundMark:
    """A red, roughly round and annular blob found in an image."""

    diameter_share: float  # diameter over the image's long side
    ring_coverage: float  # share of directions from the centre that hit red near the rim


@dataclass
class SealCheck:
    """The verdict on one PDF, one sentence of evidence and what got in the way."""

    seal: Seal
    evidence: str
    problems: list[Problem] = field(default_factory=list)


def red_mask(image: Image.Image) -> Image.Image:
    """Return an "L" mask, 255 where a pixel is strongly red (and opaque), 0 elsewhere."""
    rgba = image.convert("RGBA")
    red, green, blue, alpha = rgba.split()
    margin = ImageChops.darker(ImageChops.subtract(red, green), ImageChops.subtract(red, blue))
    strongly_red = margin.point(lambda value: 255 if value >= 60 else 0)
    bright = red.point(lambda value: 255 if value >= 120 else 0)
    opaque = alpha.point(lambda value: 255 if value >= 128 else 0)
    return ImageChops.darker(ImageChops.darker(strongly_red, bright), opaque)


def find_red_round_mark(image: Image.Image) -> RedRoundMark | None:
    """Find a red round seal-like blob in an image, or None; the image is downscaled first."""
    working = image
    if max(working.size) > MASK_SIDE:
        working = working.copy()
        working.thumbnail((MASK_SIDE, MASK_SIDE), Image.Resampling.BILINEAR)
    mask = red_mask(working)
    if mask.getbbox() is None:
        return None
    scale = GRID_SIDE / max(mask.size)
    grid_size = (max(1, round(mask.width * scale)), max(1, round(mask.height * scale)))
    # A box-filtered resize keeps thin red strokes: any red in a cell leaves a trace.
    grid = mask.resize(grid_size, Image.Resampling.BOX).point(lambda v: 255 if v >= 24 else 0)
    joined = grid.filter(ImageFilter.MaxFilter(3))
    width, height = grid.size
    grid_pixels = grid.tobytes()
    for left, top, right, bottom in _blobs(joined.tobytes(), width, height):
        mark = _judge_blob(grid_pixels, width, (left, top, right, bottom), max(width, height))
        if mark is not None:
            return mark
    return None


def _blobs(pixels: bytes, width: int, height: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield bounding boxes (inclusive) of 8-connected set regions, biggest regions first."""
    seen = bytearray(len(pixels))
    boxes: list[tuple[int, tuple[int, int, int, int]]] = []
    for start, value in enumerate(pixels):
        if not value or seen[start]:
            continue
        seen[start] = 1
        stack = [start]
        left, top, right, bottom = width, height, -1, -1
        count = 0
        while stack:
            index = stack.pop()
            count += 1
            row, column = divmod(index, width)
            left, right = min(left, column), max(right, column)
            top, bottom = min(top, row), max(bottom, row)
            for d_row in (-1, 0, 1):
                for d_column in (-1, 0, 1):
                    near_row, near_column = row + d_row, column + d_column
                    if 0 <= near_row < height and 0 <= near_column < width:
                        near = near_row * width + near_column
                        if pixels[near] and not seen[near]:
                            seen[near] = 1
                            stack.append(near)
        boxes.append((count, (left, top, right, bottom)))
    boxes.sort(reverse=True)
    for _, box in boxes:
        yield box


def _judge_blob(
    pixels: bytes, width: int, box: tuple[int, int, int, int], long_side: int
) -> RedRoundMark | None:
    """Whether the red pixels in `box` form a ring: square-ish, red along the rim, empty corners."""
    left, top, right, bottom = box
    box_width, box_height = right - left + 1, bottom - top + 1
    if min(box_width, box_height) < 10 or not 0.75 <= box_width / box_height <= 1.33:
        return None
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    radius = (box_width + box_height) / 4

    def red_at(x: float, y: float) -> bool:
        column, row = round(x), round(y)
        return left <= column <= right and top <= row <= bottom and pixels[row * width + column] > 0

    directions = 48
    hits = 0
    for step in range(directions):
        angle = 2 * math.pi * step / directions
        cos_a, sin_a = math.cos(angle), math.sin(angle)
        # Every pixel from 65% of the radius to the rim: a thin ring must not fall between.
        distances = [radius * 0.65 + step for step in range(int(radius * 0.4) + 2)]
        if any(red_at(centre_x + d * cos_a, centre_y + d * sin_a) for d in distances):
            hits += 1
    coverage = hits / directions
    if coverage < 0.7:
        return None
    corner_red = corner_total = inner_red = inner_total = 0
    for row in range(top, bottom + 1):
        for column in range(left, right + 1):
            distance = math.hypot(column - centre_x, row - centre_y)
            is_red = pixels[row * width + column] > 0
            if distance > radius * 1.12:
                corner_total += 1
                corner_red += is_red
            elif distance < radius * 0.45:
                inner_total += 1
                inner_red += is_red
    if corner_total and corner_red / corner_total > 0.2:
        return None  # a filled square or rectangle, not a ring
    if inner_total and inner_red / inner_total > 0.85:
        return None  # a solid disc (a bullet or a logo), not a seal
    return RedRoundMark(diameter_share=2 * radius / long_side, ring_coverage=coverage)


def is_red_colour(components: Sequence[float]) -> bool:
    """Whether gray, RGB or CMYK components (0..1) describe a strong red."""
    if len(components) == 3:
        red, green, blue = components
        return red >= 0.6 and red - max(green, blue) >= 0.35
    if len(components) == 4:
        cyan, magenta, yellow, black = components
        return cyan <= 0.25 and magenta >= 0.6 and yellow >= 0.5 and black <= 0.35
    return False


def signature_with_appearance(reader: PdfReader) -> bool:
    """Whether the AcroForm has a signature field (`/FT /Sig`) with a non-empty appearance."""
    root = reader.trailer.get("/Root")
    root = root.get_object() if root is not None else None
    if not isinstance(root, DictionaryObject):
        return False
    acro_form = root.get("/AcroForm")
    acro_form = acro_form.get_object() if acro_form is not None else None
    if not isinstance(acro_form, DictionaryObject):
        return False
    fields = acro_form.get("/Fields")
    pending: list[tuple[Any, str | None]] = [
        (item, None) for item in (fields.get_object() if fields is not None else [])
    ]
    visited: set[int] = set()
    while pending and len(visited) < 10_000:
        reference, inherited_type = pending.pop()
        node = reference.get_object()
        if not isinstance(node, DictionaryObject) or id(node) in visited:
            continue
        visited.add(id(node))
        field_type = str(node.get("/FT", inherited_type)) if "/FT" in node else inherited_type
        if field_type == "/Sig" and _has_appearance(node):
            return True
        kids = node.get("/Kids")
        for kid in kids.get_object() if kids is not None else []:
            pending.append((kid, field_type))
    return False


def _has_appearance(widget: DictionaryObject) -> bool:
    """Whether a widget's normal appearance holds a stream with some content."""
    appearance = widget.get("/AP")
    appearance = appearance.get_object() if appearance is not None else None
    if not isinstance(appearance, DictionaryObject) or "/N" not in appearance:
        return False
    normal = appearance["/N"].get_object()
    streams = (
        [normal]
        if isinstance(normal, StreamObject)
        else [value.get_object() for value in normal.values()]
        if isinstance(normal, DictionaryObject)
        else []
    )
    return any(isinstance(stream, StreamObject) and stream.get_data().strip() for stream in streams)


def red_round_path(
    operations: Sequence[tuple[Sequence[Any], bytes]],
) -> bool:
    """Whether a content stream paints a red path of curves whose bounding box is about square."""
    fill: list[float] = [0.0]
    stroke: list[float] = [0.0]
    saved: list[tuple[list[float], list[float]]] = []
    curves = 0
    xs: list[float] = []
    ys: list[float] = []
    for operands, operator in operations:
        if operator == b"q":
            saved.append((fill, stroke))
        elif operator == b"Q" and saved:
            fill, stroke = saved.pop()
        elif operator in {b"rg", b"k", b"g", b"sc", b"scn"}:
            fill = _numbers(operands)
        elif operator in {b"RG", b"K", b"G", b"SC", b"SCN"}:
            stroke = _numbers(operands)
        elif operator in _PATH_START or operator in {b"l", *_CURVE_OPERATORS}:
            if operator in _CURVE_OPERATORS:
                curves += 1
            numbers = _numbers(operands)
            if operator == b"re" and len(numbers) == 4:
                numbers = [numbers[0], numbers[1], numbers[0] + numbers[2], numbers[1] + numbers[3]]
            xs.extend(numbers[0::2])
            ys.extend(numbers[1::2])
        elif operator in _STROKE_PAINT | _FILL_PAINT | _BOTH_PAINT | {b"n"}:
            colours = []
            if operator in _STROKE_PAINT | _BOTH_PAINT:
                colours.append(stroke)
            if operator in _FILL_PAINT | _BOTH_PAINT:
                colours.append(fill)
            if curves >= 4 and xs and ys and any(is_red_colour(colour) for colour in colours):
                width, height = max(xs) - min(xs), max(ys) - min(ys)
                if min(width, height) >= 10 and 0.75 <= width / height <= 1.33:
                    return True
            curves = 0
            xs, ys = [], []
    return False


def _numbers(operands: Sequence[Any]) -> list[float]:
    """The numeric operands of an operator, as floats (names such as pattern names dropped)."""
    values: list[float] = []
    for operand in operands:
        try:
            values.append(float(operand))
        except (TypeError, ValueError):
            continue
    return values


def check_seal(reader: PdfReader, pages: Sequence[Any], deadline: Deadline) -> SealCheck:
    """Decide `present`, `absent` or `unknown` for the given pages of an opened PDF."""
    problems: list[Problem] = []
    if signature_with_appearance(reader):
        return SealCheck("present", "The PDF has a signature field with a visible appearance.")
    undecodable = 0
    visited_forms: set[int] = set()  # each Form XObject is scanned once, however often painted
    for page_number, page in enumerate(pages, start=1):
        if deadline.passed():
            problems.append(_budget_problem(deadline))
            return SealCheck(
                "unknown",
                f"The time budget ran out at page {page_number} before a seal was found.",
                problems,
            )
        resources = page.get("/Resources")
        resources = resources.get_object() if resources is not None else None
        try:
            contents = page.get_contents()
        except Exception as exc:  # pypdf raises many types on hostile streams
            problems.append(
                Problem("pdf_content_unreadable", {"page": page_number, "detail": str(exc)})
            )
            contents = None
        if contents is not None and _vector_seal(
            contents.operations, resources, reader, 0, visited_forms
        ):
            return SealCheck(
                "present",
                f"Page {page_number} draws a red round mark in vector graphics.",
                problems,
            )
        for image_stream in _image_streams(resources, 0, set()):
            if deadline.passed():
                problems.append(_budget_problem(deadline))
                return SealCheck(
                    "unknown",
                    f"The time budget ran out at page {page_number} before a seal was found.",
                    problems,
                )
            try:
                image = decode_image(image_stream)
            except Exception as exc:  # any decoder failure makes the image unreadable
                undecodable += 1
                problems.append(
                    Problem("pdf_image_undecodable", {"page": page_number, "detail": str(exc)})
                )
                continue
            mark = find_red_round_mark(image)
            if mark is not None:
                return SealCheck(
                    "present",
                    f"Page {page_number} has an image with a red round seal-like mark "
                    f"({mark.diameter_share:.0%} of the image's long side).",
                    problems,
                )
    if undecodable:
        return SealCheck(
            "unknown",
            f"No seal found, but {undecodable} image(s) could not be decoded and were not checked.",
            problems,
        )
    return SealCheck(
        "absent",
        "No signature field, red round drawing or red round mark in an image was found.",
        problems,
    )


def _budget_problem(deadline: Deadline) -> Problem:
    return Problem("pdf_time_budget", {"seconds": f"{deadline.seconds:g}"})


def _vector_seal(
    operations: Sequence[tuple[Sequence[Any], bytes]],
    resources: Any,
    reader: PdfReader,
    depth: int,
    visited_forms: set[int],
) -> bool:
    """Look for a red round path in a content stream and the Form XObjects it paints."""
    if len(operations) > MAX_CONTENT_OPERATIONS:
        return False
    if red_round_path(operations):
        return True
    if depth >= MAX_XOBJECT_DEPTH or not isinstance(resources, DictionaryObject):
        return False
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not isinstance(xobjects, DictionaryObject):
        return False
    for operands, operator in operations:
        if operator != b"Do" or not operands:
            continue
        form = xobjects.get(operands[0])
        form = form.get_object() if form is not None else None
        if (
            isinstance(form, StreamObject)
            and form.get("/Subtype") == "/Form"
            and id(form) not in visited_forms
        ):
            visited_forms.add(id(form))
            inner = ContentStream(form, reader).operations
            inner_resources = form.get("/Resources")
            inner_resources = inner_resources.get_object() if inner_resources else resources
            if _vector_seal(inner, inner_resources, reader, depth + 1, visited_forms):
                return True
    return False


def _image_streams(resources: Any, depth: int, visited: set[int]) -> Iterator[StreamObject]:
    """Yield image XObjects of a resource dictionary, following Form XObjects."""
    if depth > MAX_XOBJECT_DEPTH or not isinstance(resources, DictionaryObject):
        return
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not isinstance(xobjects, DictionaryObject):
        return
    for reference in xobjects.values():
        xobject = reference.get_object()
        if not isinstance(xobject, StreamObject) or id(xobject) in visited:
            continue
        visited.add(id(xobject))
        subtype = xobject.get("/Subtype")
        if subtype == "/Image":
            yield xobject
        elif subtype == "/Form":
            inner = xobject.get("/Resources")
            yield from _image_streams(
                inner.get_object() if inner is not None else None, depth + 1, visited
            )


def decode_image(stream: StreamObject) -> Image.Image:
    """Decode an image XObject into a small Pillow image, refusing decompression bombs."""
    declared = int(stream.get("/Width", 0)) * int(stream.get("/Height", 0))
    if declared > MAX_IMAGE_PIXELS:
        raise ValueError(f"declares {declared:,} pixels, more than {MAX_IMAGE_PIXELS:,}")
    with warnings.catch_warnings():
        # Pillow's own bomb check warns first; treat its warning as the refusal it is.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        filters = stream.get("/Filter")
        if filters == "/DCTDecode" and "/SMask" not in stream and "/Decode" not in stream:
            # JPEG: decode at reduced scale straight away; this is most of the speed on scans.
            image = Image.open(io.BytesIO(stream.get_data()))
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"holds {image.width * image.height:,} pixels")
            if image.mode in {"RGB", "L"}:
                image.draft(image.mode, (MASK_SIDE, MASK_SIDE))
                image.load()
                return image
        decoded = stream.decode_as_image()
    if not isinstance(decoded, Image.Image):
        raise ValueError("pypdf returned no image")
    if decoded.width * decoded.height > MAX_IMAGE_PIXELS:
        raise ValueError(f"holds {decoded.width * decoded.height:,} pixels")
    return decoded
