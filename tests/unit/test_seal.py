"""Seal-like marks: red rings are found; squares, discs, red text and other colours are not."""

from __future__ import annotations

from PIL import Image, ImageDraw

from parsers.seal import find_red_round_mark, is_red_colour, red_round_path

RED = (214, 32, 40)


def canvas(size: tuple[int, int] = (1240, 1754)) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", size, "white")
    return image, ImageDraw.Draw(image)


def ring(draw: ImageDraw.ImageDraw, colour: object, centre: tuple[int, int], radius: int) -> None:
    x, y = centre
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=colour, width=8)
    draw.regular_polygon((x, y, radius // 3), 5, fill=colour)


def test_red_ring_with_a_star_on_a_page_is_a_seal() -> None:
    page, draw = canvas()
    ring(draw, RED, (900, 1400), 140)

    mark = find_red_round_mark(page)

    assert mark is not None
    assert 0.1 < mark.diameter_share < 0.25


def test_seal_pasted_as_a_transparent_image_is_a_seal() -> None:
    seal = Image.new("RGBA", (500, 500), (0, 0, 0, 0))
    ring(ImageDraw.Draw(seal), (*RED, 255), (250, 250), 230)

    assert find_red_round_mark(seal) is not None


def test_faded_scan_colour_still_counts_as_red() -> None:
    page, draw = canvas()
    ring(draw, (205, 95, 95), (400, 400), 150)

    assert find_red_round_mark(page) is not None


def test_blue_ring_is_not_a_seal() -> None:
    page, draw = canvas()
    ring(draw, (30, 60, 200), (900, 1400), 140)

    assert find_red_round_mark(page) is None


def test_red_filled_square_is_not_a_seal() -> None:
    page, draw = canvas()
    draw.rectangle((700, 1200, 980, 1480), fill=RED)

    assert find_red_round_mark(page) is None


def test_solid_red_disc_is_not_a_seal() -> None:
    page, draw = canvas()
    draw.ellipse((700, 1200, 980, 1480), fill=RED)

    assert find_red_round_mark(page) is None


def test_red_heading_text_is_not_a_seal() -> None:
    page, draw = canvas()
    for line in range(5):
        draw.text((100, 100 + 40 * line), "Important notice in red " * 3, fill=RED)
    draw.line((100, 320, 1100, 320), fill=RED, width=6)

    assert find_red_round_mark(page) is None


def test_white_page_has_no_seal() -> None:
    page, _ = canvas((10, 10))

    assert find_red_round_mark(page) is None


def test_red_is_recognised_in_rgb_and_cmyk_but_not_in_gray_or_black() -> None:
    assert is_red_colour([0.9, 0.1, 0.1])
    assert is_red_colour([0.0, 0.95, 0.9, 0.0])
    assert not is_red_colour([0.5])
    assert not is_red_colour([0.1, 0.1, 0.9])
    assert not is_red_colour([0.0, 0.0, 0.0, 1.0])


def test_red_rectangle_path_is_not_a_round_seal() -> None:
    operations = [([1, 0, 0], b"RG"), ([10, 10, 100, 100], b"re"), ([], b"S")]

    assert red_round_path(operations) is False
