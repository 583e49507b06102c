"""The offline provider: deterministic PNGs of the exact size, steered by every parameter."""

import colorsys
import hashlib
import io
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from app.providers.base import TUNABLE, GenerationRequest
from app.providers.offline import OfflineProvider, render

BASE = dict(prompt="sunset over the ocean", negative_prompt="", seed=42, width=512, height=512,
            steps=20, cfg_scale=7.0)
ROOT = Path(__file__).resolve().parent.parent


@cache
def png(**changes) -> bytes:
    """Render BASE with some parameters changed (each distinct render once per run)."""
    return render(**{**BASE, **changes})


def pixels(**changes) -> np.ndarray:
    """The pixels of png(**changes), as floats."""
    with Image.open(io.BytesIO(png(**changes))) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference per channel, in 0..255."""
    return float(np.abs(a - b).mean())


def share_of_hue(image: np.ndarray, low: float, high: float) -> float:
    """Fraction of clearly coloured pixels whose hue (in degrees) lies in a range."""
    small = image[::8, ::8].reshape(-1, 3) / 255
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in small])
    hue = hsv[:, 0] * 360
    return float(((hue >= low) & (hue < high) & (hsv[:, 1] > 0.35) & (hsv[:, 2] > 0.3)).mean())


def test_same_parameters_give_the_same_bytes():
    assert render(**BASE) == png()


def test_same_bytes_in_another_process():
    # A bare "app" package skips the web app's imports: only the renderer is under test here.
    code = ("import hashlib, sys, types; app = types.ModuleType('app'); app.__path__ = ['app']; "
            "sys.modules['app'] = app; from app.providers.offline import render; "
            f"sys.stdout.write(hashlib.sha256(render(**{BASE!r})).hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out == hashlib.sha256(png()).hexdigest()


def test_another_seed_gives_another_picture():
    assert png() != png(seed=43)
    assert difference(pixels(), pixels(seed=43)) > 3


def test_exact_size_rgb_png():
    for width, height in [(512, 512), (1024, 768), (512, 2048), (2048, 512), (640, 1536)]:
        data = render(**{**BASE, "width": width, "height": height})
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (width, height))
            image.load()


def test_negative_prompt_changes_the_picture():
    plain = pixels()
    assert difference(plain, pixels(negative_prompt="blurry, low quality")) > 3
    assert difference(plain, pixels(negative_prompt="sun")) > 0.5


def test_negative_colour_is_avoided():
    plain, avoided = pixels(), pixels(negative_prompt="orange")
    assert share_of_hue(avoided, 15, 45) < share_of_hue(plain, 15, 45) / 2


def test_cfg_scale_sets_contrast_and_saturation():
    low, high = pixels(cfg_scale=2.0), pixels(cfg_scale=15.0)
    assert high.std() > low.std() * 1.2
    spread = lambda image: float((image.max(axis=2) - image.min(axis=2)).mean())  # noqa: E731
    assert spread(high) > spread(low) * 1.5


def test_steps_change_the_detail():
    assert difference(pixels(steps=10), pixels(steps=50)) > 2


def test_colour_words_steer_the_palette():
    def mean(prompt):
        return pixels(prompt=prompt).reshape(-1, 3).mean(axis=0)

    ocean, fire = mean("deep blue ocean"), mean("red fire")
    assert ocean[2] - ocean[0] > fire[2] - fire[0] + 50
    night = mean("night").mean()
    assert night < mean("sunset").mean() - 40
    assert night < mean("snow").mean() - 80
    green = mean("green abstract dreams")
    assert green[1] > green[0] and green[1] > green[2]


def test_unknown_words_pick_a_palette_deterministically():
    cat, piano = pixels(prompt="a quiet cat"), pixels(prompt="an old piano")
    assert render(**{**BASE, "prompt": "a quiet cat"}) == png(prompt="a quiet cat")
    assert difference(cat, piano) > 10


def test_provider_metadata():
    provider = OfflineProvider({})
    assert provider.name == "offline"
    assert provider.label == "Offline renderer (no AI model)"
    assert provider.configured is True
    assert [m.name for m in provider.models] == ["abstract"]
    model = provider.model("abstract")
    assert model.label == "Abstract renderer"
    assert model.honours == frozenset(TUNABLE) and model.ignores() == []
    assert provider.default_model == "abstract"


def test_generate_returns_the_png_and_the_seed():
    request = GenerationRequest(prompt="neon city at night", negative_prompt="", model="abstract",
                                width=768, height=512, steps=25, cfg_scale=6.5, seed=987654321,
                                timeout=30)
    result = OfflineProvider({}).generate(request)
    assert result.seed == 987654321 and result.content_filtered is False
    assert result.data == render("neon city at night", "", 987654321, 768, 512, 25, 6.5)
