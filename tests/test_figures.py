"""`snn predict --figure`: the image as a person sees it, every panel named, no empty space."""

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from snncli.cli import app
from snncli.figures import CHECKER_GREYS, figure_size, picture_of

from conftest import glyph

RED = (220, 20, 30)


def transparent_red_digit(path, digit: int = 4):
    """A red digit on a fully transparent background (its transparent pixels black, as many
    drawing programs store them)."""
    strokes = np.asarray(Image.fromarray(glyph(digit, np.random.default_rng(digit))).resize(
        (112, 112)))
    rgba = np.zeros((112, 112, 4), np.uint8)
    rgba[..., :3] = RED
    rgba[..., 3] = strokes
    rgba[strokes == 0, :3] = 0
    Image.fromarray(rgba, "RGBA").save(path)
    return strokes


def is_red(pixels):
    return (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)


def test_a_transparent_png_is_drawn_over_a_light_checkerboard_in_its_colours(tmp_path):
    strokes = transparent_red_digit(tmp_path / "four.png")
    picture = picture_of(str(tmp_path / "four.png"))
    assert picture.shape == (112, 112, 3) and picture.dtype == np.uint8
    background = picture[strokes == 0]
    assert set(np.unique(background)) == set(CHECKER_GREYS)  # light, both squares showing
    assert is_red(picture[strokes == 255]).all()  # the ink keeps its colour
    grey = tmp_path / "grey.png"  # an ordinary grey image stays as it was, as RGB
    Image.fromarray(255 - glyph(3, np.random.default_rng(3))).save(grey)
    assert (picture_of(str(grey)) == (255 - glyph(3, np.random.default_rng(3)))[..., None]).all()


def test_figure_of_a_transparent_png_shows_it_light_and_red(mlp_checkpoint, tmp_path):
    transparent_red_digit(tmp_path / "four.png")
    figure = tmp_path / "figure.png"
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "four.png"), "-c",
                                      str(mlp_checkpoint), "--figure", str(figure)])
    assert result.exit_code == 0, result.output
    with Image.open(figure) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[:2] == figure_size(1)[::-1] == (240, 1200)
    # The first panel (the image as given) spans about the first seventh of the width.
    panel = pixels[30:230, 15:165]
    assert is_red(panel).sum() > 500  # the red strokes, in red
    dark = (panel.max(axis=2) < 60).mean()
    assert dark < 0.05, dark  # not a black square: the transparent background is drawn light
    assert (panel.min(axis=2) > 200).mean() > 0.5
    # No empty band above the panels: the first panel's frame starts just under its title.
    drawn = (pixels[:, 15:165].min(axis=2) < 200).sum(axis=1)
    assert np.argmax(drawn > 100) < 40, np.argmax(drawn > 100)
