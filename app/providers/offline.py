"""The built-in offline provider: a deterministic abstract renderer (no AI model, no network).

The prompt's words pick a scene (sunset, ocean, forest, night, neon, ...) and a palette (colour
words, moods); the seed places everything; the negative prompt removes the colours and motifs it
names; steps add detail and cfg_scale sets contrast and saturation. The picture is painted with
numpy on a small canvas and upscaled, so a 1024x1024 PNG takes a few tens of milliseconds.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import re

import numpy as np
from PIL import Image

from .base import TUNABLE, GenerationRequest, GenerationResult, Model, Provider

BASE = 384  # longest side of the canvas that is painted before upscaling

COLOURS = {
    "red": "#d7263d", "crimson": "#a4133c", "scarlet": "#e4312b", "ruby": "#b0173a",
    "orange": "#f57c1f", "amber": "#f2a007", "gold": "#e0a526", "golden": "#e0a526",
    "yellow": "#f7d731", "lime": "#9bd22a", "green": "#2e9e44", "emerald": "#1a936f",
    "olive": "#6b7a2a", "teal": "#128c8c", "turquoise": "#30d5c8", "cyan": "#19d3e6",
    "azure": "#3a8dde", "blue": "#1e63d6", "navy": "#14213d", "indigo": "#3f2b96",
    "violet": "#8f5cf0", "purple": "#7b2cbf", "lavender": "#b9a3e8", "magenta": "#e01fb3",
    "pink": "#f47ab0", "rose": "#e8577e", "brown": "#7a4a2a", "black": "#0b0b10",
    "white": "#f4f4f6", "grey": "#8a8d93", "gray": "#8a8d93", "silver": "#c0c4cc",
}

# name: (kind, sky stops top->horizon, ground stops horizon->bottom, accents, motifs)
THEMES = {
    "sunset": ("sky", ["#2a1b5c", "#8a3b8f", "#e8614d", "#fdb35b"],
               ["#e07a4f", "#7a2f5e", "#2a1238"], ["#ffb14e", "#fa7d5b", "#c74b8d"],
               {"sun", "clouds"}),
    "night": ("sky", ["#02030c", "#0a1433", "#1c2c5a"], ["#101b3b", "#050914"],
              ["#8fb3ff", "#e8ecff"], {"stars", "moon"}),
    "space": ("sky", ["#010006", "#090418", "#120a2e"], ["#120a2e", "#010006"],
              ["#5b2a9e", "#d23c8c", "#3c8ee0"], {"stars", "nebula", "planet"}),
    "neon": ("sky", ["#05010f", "#16052e", "#3a0a52"], ["#140429", "#04010c"],
             ["#ff2bd6", "#19e6ff", "#8a5cff"], {"neon", "grid"}),
    "ocean": ("ground", ["#6fb1e0", "#cde8f6"], ["#3b9ad0", "#145d99", "#062b55"],
              ["#e6f6ff", "#8fd3f5"], {"waves", "clouds"}),
    "forest": ("ground", ["#9cc9a0", "#e2efd6"], ["#4d8a3e", "#23522a", "#0b2613"],
               ["#c9e7b5", "#6fae5c"], {"trunks", "canopy"}),
    "desert": ("ground", ["#f0a75b", "#fbe2ae"], ["#eab06a", "#c77a3e", "#7e4322"],
               ["#fff1c9", "#e8914a"], {"dunes", "sun"}),
    "snow": ("ground", ["#a9c1dc", "#eef4fb"], ["#f6faff", "#d7e4f1", "#a9bfd8"],
             ["#ffffff", "#cfe0f2"], {"mountains", "flakes"}),
    "mountains": ("ground", ["#8fb8de", "#e4eef7"], ["#6c7f99", "#3a4860", "#1c2434"],
                  ["#ffffff", "#dfe8f2"], {"mountains", "clouds"}),
    "city": ("ground", ["#31406b", "#c98f7a"], ["#262a38", "#101219"],
             ["#ffcf6b", "#ffe9b0"], {"skyline"}),
    "fire": ("ground", ["#0d0202", "#3b0a04", "#7a1a06"], ["#7a1a06", "#2a0603"],
             ["#ffd25a", "#ff7a1a"], {"flames", "embers"}),
}
ALIASES = {
    "sea": "ocean", "water": "ocean", "beach": "ocean", "dusk": "sunset", "sunrise": "sunset",
    "dawn": "sunset", "evening": "sunset", "midnight": "night", "starry": "night",
    "galaxy": "space", "cosmos": "space", "cosmic": "space", "cyberpunk": "neon",
    "synthwave": "neon", "woods": "forest", "jungle": "forest", "sand": "desert", "winter": "snow",
    "ice": "snow", "frozen": "snow", "snowy": "snow", "mountain": "mountains", "hills": "mountains",
    "alps": "mountains", "town": "city", "urban": "city", "lava": "fire", "inferno": "fire",
    "burning": "fire",
}
MOTIFS = {
    "sun": "sun", "moon": "moon", "star": "stars", "cloud": "clouds", "wave": "waves",
    "tree": "trunks", "trunk": "trunks", "leaves": "canopy", "building": "skyline",
    "skyline": "skyline", "window": "skyline", "line": "neon", "grid": "grid", "circle": "orbs",
    "orb": "orbs", "bubble": "orbs", "ring": "rings", "dune": "dunes", "peak": "mountains",
    "snowflake": "flakes", "flake": "flakes", "mist": "mist", "fog": "mist", "haze": "mist",
    "misty": "mist", "foggy": "mist", "hazy": "mist", "planet": "planet", "nebula": "nebula",
    "flame": "flames", "ember": "embers", "spark": "embers",
}
MOODS = {  # word: (value factor, saturation factor)
    "dark": (0.6, 1.0), "deep": (0.8, 1.15), "dim": (0.7, 0.9), "gloomy": (0.65, 0.7),
    "bright": (1.25, 1.05), "light": (1.2, 0.85), "pale": (1.2, 0.6), "pastel": (1.2, 0.55),
    "vivid": (1.0, 1.4), "vibrant": (1.05, 1.4), "muted": (0.95, 0.55), "misty": (1.1, 0.75),
}
NEUTRALS = {  # colour words without a hue act on lightness and saturation
    "black": (0.55, 1.0), "white": (1.3, 0.55), "grey": (0.95, 0.35), "gray": (0.95, 0.35),
    "silver": (1.15, 0.3),
}
FIRE = ["#000000", "#5a0a00", "#c41e0a", "#ff6a00", "#ffb000", "#fff3b0"]
ROCK = ["#8ea3bf", "#5d6f8c", "#34405a"]
KNOWN = COLOURS.keys() | THEMES.keys() | ALIASES.keys() | MOTIFS.keys() | MOODS.keys()


def _int(text: str) -> int:
    """Return a stable 64-bit number for a text (unlike hash(), the same in every process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _words(text: str) -> list[str]:
    """Split a prompt into lower-case words, folding simple plurals onto known words."""
    words = re.findall(r"\w+", text.lower())
    return [w[:-1] if w not in KNOWN and w.endswith("s") and w[:-1] in KNOWN else w for w in words]


def _rgb(colour: str) -> np.ndarray:
    """Parse '#rrggbb' into floats in 0..1."""
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], np.float32) / 255


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """Return an RGB colour from hue (in turns), saturation and value."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(s, 1.0), min(v, 1.0)), np.float32)


def _smooth(edge0, edge1, x):
    """Hermite step from 0 at edge0 to 1 at edge1 (edges may be in either order)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _ramp(stops: np.ndarray, t):
    """Map values in 0..1 onto a gradient through the colour stops."""
    xs = np.linspace(0.0, 1.0, len(stops))
    return np.stack([np.interp(t, xs, stops[:, k]) for k in range(3)], axis=-1).astype(np.float32)


def _mix(a, b, t: float) -> np.ndarray:
    """Linear mix of two colours."""
    return (np.asarray(a) * (1 - t) + np.asarray(b) * t).astype(np.float32)


class _Look:
    """The colour decisions of a prompt and negative prompt, applied to any list of colours."""

    def __init__(self, words: list[str], negative: list[str]):
        named = [w for w in words if w in COLOURS]
        self.colours = [_rgb(COLOURS[w]) for w in named]
        self.hues = [colorsys.rgb_to_hsv(*_rgb(COLOURS[w])) for w in named if w not in NEUTRALS]
        tones = {**MOODS, **NEUTRALS}
        undone = [w for w in negative if w in MOODS]  # a negated mood pushes the other way
        self.value = _product(tones[w][0] for w in words if w in tones)
        self.value /= _product(MOODS[w][0] for w in undone)
        self.sat = _product(tones[w][1] for w in words if w in tones)
        self.sat /= _product(MOODS[w][1] for w in undone)
        self.avoid = [colorsys.rgb_to_hsv(*_rgb(COLOURS[w])) for w in negative if w in COLOURS]
        rest = [w for w in negative if w not in KNOWN]
        turn = _int(" ".join(rest))
        self.rotate = ((0.06 + (turn % 1000) / 10000) * (1 if turn & 1024 else -1)) if rest else 0.0

    def paint(self, stops, which: int = 0, tint: bool = True, replace: bool = False) -> np.ndarray:
        """Return the stops turned towards the colour words and away from the negative prompt."""
        if replace and self.colours:
            stops = self.colours
        rgb = [_rgb(c) if isinstance(c, str) else c for c in stops]
        hsv = np.array([colorsys.rgb_to_hsv(*c) for c in rgb])
        if self.hues and tint and not replace:  # turn the palette's main hue onto the colour word's
            h, s, _ = self.hues[which % len(self.hues)]
            gap = (h - _mean_hue(hsv) + 0.5) % 1.0 - 0.5
            hsv[:, 0] += gap - np.clip(gap, -0.08, 0.08)  # a palette already close keeps its hues
            hsv[:, 1] = hsv[:, 1] * 0.7 + s * 0.3
        hsv[:, 1] *= self.sat
        hsv[:, 2] *= self.value
        centre = _mean_hue(hsv)
        for nh, ns, nv in self.avoid:
            if ns > 0.25:  # a hue: move the stops near it away, towards the rest of the palette
                gap = (hsv[:, 0] - nh + 0.5) % 1.0 - 0.5
                side = 1 if (centre - nh + 0.5) % 1.0 - 0.5 >= 0 else -1
                hsv[(np.abs(gap) < 0.12) & (hsv[:, 1] > 0.15), 0] = nh + 0.17 * side
            elif nv < 0.2:  # black
                hsv[:, 2] = np.maximum(hsv[:, 2], 0.3)
            elif nv > 0.9:  # white
                hsv[:, 2] = np.minimum(hsv[:, 2], 0.72)
            else:  # grey
                hsv[:, 1] = np.maximum(hsv[:, 1], 0.45)
        return np.array([_hsv(h + self.rotate, s, v) for h, s, v in hsv], np.float32)


def _product(values) -> float:
    """Product of the values (1 for none)."""
    return float(np.prod(list(values) or [1.0]))


def _mean_hue(hsv: np.ndarray) -> float:
    """Circular mean of the hues, weighted by how colourful each stop is."""
    weight, angle = hsv[:, 1] * hsv[:, 2], hsv[:, 0] * 2 * np.pi
    y, x = (weight * np.sin(angle)).sum(), (weight * np.cos(angle)).sum()
    return float(np.arctan2(y, x) / (2 * np.pi))


class _Scene:
    """What to paint: palettes, horizon and the set of motifs."""

    def __init__(self, words: list[str], negative: list[str], horizon: float):
        look = _Look(words, negative)
        themes = [ALIASES.get(w, w) for w in words if ALIASES.get(w, w) in THEMES]
        themes = list(dict.fromkeys(themes))
        self.abstract = not themes
        if themes:
            sky_theme = next((t for t in themes if THEMES[t][0] == "sky"), themes[0])
            ground_theme = next((t for t in themes if THEMES[t][0] == "ground"), sky_theme)
            sky, ground = THEMES[sky_theme][1], THEMES[ground_theme][2]
            if ground_theme != sky_theme:  # the ground reflects some of the sky
                ground = [_mix(_rgb(g), _rgb(THEMES[sky_theme][2][0]), 0.3) for g in ground]
            accents = THEMES[themes[0]][3]
            self.motifs = set().union(*(THEMES[t][4] for t in themes))
        else:
            sky = ground = _colour_palette(look.colours) if look.colours else _hash_palette(words)
            accents = sky[1:]
            layouts = [{"orbs"}, {"rings", "orbs"}, {"ridges", "orbs"}, {"ridges", "rings"}]
            self.motifs = layouts[(_int(" ".join(words)) >> 20) % len(layouts)]
        self.motifs |= {MOTIFS[w] for w in words if w in MOTIFS}
        for w in negative:
            if w in MOTIFS:
                self.motifs.discard(MOTIFS[w])
            elif ALIASES.get(w, w) in THEMES:
                self.motifs -= THEMES[ALIASES.get(w, w)][4]
        self.sky = look.paint(sky, tint=bool(themes))
        self.ground = look.paint(ground, which=1, tint=bool(themes))
        self.accents = look.paint(accents, replace=True)
        self.fire = look.paint(FIRE)
        self.rock = _mix(look.paint(ROCK), _ramp(self.ground, np.linspace(0, 1, len(ROCK))), 0.5)
        self.full_sky = themes == ["space"]
        self.horizon = horizon


def _colour_palette(colours: list[np.ndarray]) -> list[np.ndarray]:
    """A dark-to-light palette through the named colours."""
    return [colours[0] * 0.2, colours[0] * 0.6, *colours, _mix(colours[-1], [1, 1, 1], 0.75)]


def _hash_palette(words: list[str]) -> list[np.ndarray]:
    """Pick a harmonious dark-to-light palette from the words alone."""
    h = _int(" ".join(words))
    hue = (h % 3600) / 3600
    a, b = [(0.08, 0.16), (0.5, 0.55), (0.33, 0.66), (-0.08, 0.5)][(h >> 12) % 4]
    return [_hsv(hue, 0.65, 0.16), _hsv(hue + a, 0.7, 0.45), _hsv(hue + b, 0.6, 0.78),
            _hsv(hue + a / 2, 0.25, 0.97)]


class _Canvas:
    """The small float RGB canvas with its coordinates, random streams and detail level."""

    def __init__(self, width: int, height: int, key: list[int], steps: int):
        scale = BASE / max(width, height)
        self.w, self.h = max(16, round(width * scale)), max(16, round(height * scale))
        self.aspect = self.w / self.h
        self.unit = min(1.0, self.aspect)  # shapes shrink in tall pictures to fit the width
        self.v = ((np.arange(self.h, dtype=np.float32) + 0.5) / self.h)[:, None]  # 0 top, 1 bottom
        self.u = ((np.arange(self.w, dtype=np.float32) + 0.5) / self.h)[None, :]  # same unit as v
        self.key = key
        self.steps = steps
        self.octaves = 2 + max(0, steps - 10) * 5 // 40
        self.img = np.zeros((self.h, self.w, 3), np.float32)
        self.sun = None

    def rng(self, name: str) -> np.random.Generator:
        """A random stream per motif, so removing one motif leaves the others in place."""
        return np.random.default_rng([*self.key, _int(name)])

    def noise(self, name: str, cells: float = 2.0, stretch=(1.0, 1.0), octaves: int | None = None,
              line: bool = False):
        """Fractal value noise in 0..1 (one row if line): smooth random grids summed."""
        h = 1 if line else self.h
        rng, out, amp, total = self.rng(name), np.zeros((h, self.w), np.float32), 1.0, 0.0
        for o in range(octaves or self.octaves):
            n = cells * 2**o
            gy, gx = 1 if line else int(n * stretch[1]) + 2, int(n * self.aspect * stretch[0]) + 2
            if gx > self.w / 3:
                break
            grid = rng.random((gy, gx), dtype=np.float32)
            out += amp * np.asarray(Image.fromarray(grid).resize((self.w, h), Image.BICUBIC))
            total, amp = total + amp, amp * 0.5
        return out / total

    def box(self, x: float, y: float, rx: float, ry: float):
        """Slices of the canvas around a point, so small shapes touch only their own pixels."""
        x0, x1 = max(0, int((x - rx) * self.h)), min(self.w, int((x + rx) * self.h) + 2)
        y0, y1 = max(0, int((y - ry) * self.h)), min(self.h, int((y + ry) * self.h) + 2)
        return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))

    def blend(self, colour, alpha, where=(slice(None), slice(None))):
        """Paint a colour (or colour field) with some opacity over the canvas or a box of it."""
        self.img[where] += (colour - self.img[where]) * np.asarray(alpha, np.float32)[..., None]

    def glow(self, colour, amount):
        """Add light of a colour."""
        self.img += np.asarray(colour, np.float32) * np.asarray(amount, np.float32)[..., None]

    def dots(self, rng, n: int, top: float, bottom: float):
        """Return a layer with n random dots of random brightness between two heights."""
        layer = np.zeros((self.h, self.w), np.float32)
        ys = (rng.uniform(top, bottom, n) * self.h).astype(int).clip(0, self.h - 1)
        xs = (rng.random(n) * self.w).astype(int).clip(0, self.w - 1)
        np.maximum.at(layer, (ys, xs), rng.random(n, dtype=np.float32) ** 2)
        return layer


def _background(c: _Canvas, s: _Scene):
    """Sky above the horizon and ground below it, each a gently clouded gradient."""
    n = c.noise("background", 1.5) - 0.5
    hz = 1.0 if s.full_sky else s.horizon
    sky = _ramp(s.sky, np.clip(c.v / hz + n * 0.2, 0, 1))
    ground = _ramp(s.ground, np.clip((c.v - hz) / max(1 - hz, 1e-3) + n * 0.25, 0, 1))
    c.img = sky
    c.blend(ground, _smooth(hz - 0.003, hz + 0.003, c.v))


def _flow(c: _Canvas, s: _Scene):
    """Marbled bands of the palette for prompts without a scene."""
    r = c.rng("flow")
    n, m = c.noise("flow", 1.5), c.noise("flow-warp", 1.0)
    angle = r.uniform(0, np.pi)
    along = c.u * np.cos(angle) + c.v * np.sin(angle)
    bands = np.sin(2 * np.pi * (r.uniform(1.5, 3.0) * along + 2.5 * m))
    t = np.clip(0.5 + 0.3 * bands + 0.9 * (n - 0.5) + 0.3 * (c.v - 0.5), 0, 1)
    c.img = _ramp(s.sky, t)


def _clouds(c: _Canvas, s: _Scene):
    """Soft horizontal streaks of light in the sky."""
    n = c.noise("clouds", 1.5, stretch=(0.5, 2.5))
    a = _smooth(0.5, 0.75, n) * 0.55 * _smooth(s.horizon, s.horizon - 0.15, c.v)
    c.blend(_mix(c.img, s.accents[0], 0.6), a)


def _sun(c: _Canvas, s: _Scene):
    """A sun disc with a halo, sitting a little above (or on) the horizon."""
    r = c.rng("sun")
    x, rad = r.uniform(0.25, 0.75) * c.aspect, r.uniform(0.06, 0.11) * c.unit
    y = s.horizon - r.uniform(-0.3, 1.5) * rad
    colour = _mix(s.sky[-1], [1, 0.98, 0.9], 0.8)
    d = np.hypot(c.u - x, c.v - y)
    above = _smooth(s.horizon + 0.002, s.horizon - 0.002, c.v)
    c.glow(s.sky[-1], 0.45 * np.exp(-((d / (rad * 3)) ** 2)) * above)
    c.blend(colour, _smooth(rad, rad - 0.004, d) * above)
    c.sun = (x, colour)


def _moon(c: _Canvas, s: _Scene):
    """A pale crescent moon high in the sky."""
    r = c.rng("moon")
    x, y = r.uniform(0.15, 0.85) * c.aspect, r.uniform(0.1, 0.3) * s.horizon
    rad = r.uniform(0.03, 0.05) * c.unit
    d = np.hypot(c.u - x, c.v - y)
    shadow = np.hypot(c.u - x - rad * 0.45, c.v - y + rad * 0.2)
    colour = _mix(s.accents[-1], [1, 1, 0.95], 0.6)
    c.glow(colour, 0.25 * np.exp(-((d / (rad * 3)) ** 2)))
    c.blend(colour, _smooth(rad, rad - 0.003, d) * _smooth(rad * 0.9, rad * 0.95, shadow))


def _stars(c: _Canvas, s: _Scene):
    """Scattered stars, denser high up and with more steps."""
    r = c.rng("stars")
    top = 1.0 if s.full_sky else s.horizon
    layer = c.dots(r, int(c.w * c.h / 2000 * c.steps / 10), 0, top)
    c.glow([1.0, 0.97, 0.9], layer * _smooth(top, top * 0.6, c.v))


def _nebula(c: _Canvas, s: _Scene):
    """Coloured clouds of gas."""
    n, hue = c.noise("nebula", 2.0), c.noise("nebula-hue", 1.0, octaves=2)
    colour = _ramp(s.accents, np.clip((hue - 0.3) / 0.4, 0, 1))
    c.glow(colour, _smooth(0.45, 0.8, n) ** 1.5 * 0.9)


def _planet(c: _Canvas, s: _Scene):
    """A shaded planet lit from one side."""
    r = c.rng("planet")
    x, y = r.uniform(0.2, 0.8) * c.aspect, r.uniform(0.25, 0.75)
    rad = r.uniform(0.08, 0.18) * c.unit
    dx, dy = (c.u - x) / rad, (c.v - y) / rad
    z = np.sqrt(np.clip(1 - dx * dx - dy * dy, 0, 1))
    lx, ly = np.cos(r.uniform(0, 2 * np.pi)), np.sin(r.uniform(0, 2 * np.pi))
    light = np.clip(0.15 + 0.85 * (dx * lx + dy * ly + 0.6 * z), 0, 1)
    colour = _ramp(np.array([s.sky[0], s.accents[0], _mix(s.accents[-1], [1, 1, 1], 0.5)]), light)
    c.blend(colour, _smooth(1.0, 0.97, np.hypot(dx, dy)))


def _ridges(c: _Canvas, s: _Scene, name: str, stops: np.ndarray, jagged: bool):
    """Layers of mountains (jagged) or dunes, paler with distance."""
    r = c.rng(name)
    layers = 3 + c.steps // 20
    for i in range(layers):
        depth = (i + 1) / layers
        if jagged:
            n = c.noise(f"{name}{i}", 1.0 + i * 0.5, line=True)[0]
            n = 1 - np.abs(2 * (n - n.min()) / (np.ptp(n) + 1e-6) - 1)  # sharp ridges
            top = s.horizon - 0.01 - (0.06 + 0.3 * (1 - depth)) * n
            light = np.ones_like(top)
        else:
            f, p = r.uniform(3, 7), r.uniform(0, 2 * np.pi)
            wave = np.sin(f * c.u[0] + p) + 0.4 * np.sin(2.3 * f * c.u[0] + 2 * p)
            top = s.horizon + 0.3 * (1 - s.horizon) * (depth - 0.3) - 0.04 * wave
            light = 0.8 + 0.2 * np.tanh(np.gradient(wave) * 40)  # sunny and shaded flanks
        near = _ramp(stops, depth)
        far = _mix(s.sky[-1], near, 0.35 + 0.65 * depth)
        fill = _ramp(np.array([far, near]), np.clip((c.v - top) / 0.25, 0, 1))
        fill *= light[None, :, None]
        if jagged and "flakes" in s.motifs:  # snow caps
            fill = _mix(fill, [0.96, 0.97, 1.0], 0.8 * _smooth(0.08, 0.0, c.v - top)[..., None])
        foot = 1.0 if not jagged else s.horizon + 0.004  # mountains stand on the horizon
        c.blend(fill, _smooth(top - 0.002, top + 0.002, c.v) * (c.v < foot))


def _mountains(c: _Canvas, s: _Scene):
    """Jagged mountain ranges on the horizon."""
    _ridges(c, s, "mountains", s.rock, jagged=True)


def _dunes(c: _Canvas, s: _Scene):
    """Rolling sand dunes."""
    _ridges(c, s, "dunes", s.ground, jagged=False)


def _waves(c: _Canvas, s: _Scene):
    """Bands of waves that crowd together towards the horizon, with the sun's reflection."""
    d = np.clip((c.v - s.horizon) / (1 - s.horizon), 0, 1)
    n = c.noise("waves", 2.0, stretch=(0.4, 3.0))
    phase = np.sin(2 * np.pi * ((8 + c.steps / 3) * np.sqrt(d) + 1.5 * n + 0.15 * np.sin(c.u * 9)))
    below = _smooth(s.horizon, s.horizon + 0.01, c.v)
    crest = _smooth(0.55, 1.0, phase) * (0.2 + 0.5 * d) * below
    c.blend(s.ground[-1], _smooth(0.55, 1.0, -phase) * 0.25 * below)
    c.blend(s.accents[0], crest)
    if c.sun:
        x, colour = c.sun
        column = np.exp(-(((c.u - x) / (0.03 + 0.2 * d)) ** 2))
        c.glow(colour, column * (crest + 0.15 * below) * 1.2)


def _trunks(c: _Canvas, s: _Scene):
    """Vertical tree trunks, far ones pale and thin, near ones dark and wide."""
    r = c.rng("trunks")
    count = round((6 + c.steps // 4) * min(max(c.aspect, 0.5), 2.0))
    for i in range(count):
        depth = (i + 1) / count
        x, w = r.uniform(-0.05, c.aspect + 0.05), (0.006 + 0.035 * depth**2) * c.unit
        where = c.box(x, 0.5, w + 0.02, 1.0)
        dx = c.u[:, where[1]] - x - 0.015 * np.sin(c.v * r.uniform(2, 6) + r.uniform(0, 6))
        foot = s.horizon + (1 - s.horizon) * depth * 0.9
        colour = _mix(s.sky[-1], s.ground[-1] * 0.7, 0.3 + 0.7 * depth)
        bark = 0.85 + 0.15 * _smooth(w, -w, dx)  # lit on one side
        c.blend(colour * bark[..., None], _smooth(w, w * 0.8, np.abs(dx)) * (c.v < foot), where)


def _canopy(c: _Canvas, s: _Scene):
    """Dark leaves hanging into the top of the picture."""
    n = c.noise("canopy", 3.0)
    a = _smooth(0.45, 0.6, n + (0.22 - c.v) * 1.5)
    c.blend(_ramp(s.ground[::-1], n), a * 0.9)


def _mist(c: _Canvas, s: _Scene):
    """Low drifting mist."""
    n = c.noise("mist", 1.2, stretch=(0.5, 2.0))
    band = _smooth(0.0, 0.25, c.v - s.horizon + 0.25) * _smooth(1.1, 0.6, c.v)
    c.blend(_mix(s.sky[-1], [1, 1, 1], 0.4), _smooth(0.35, 0.7, n) * band * 0.6)


def _skyline(c: _Canvas, s: _Scene):
    """Two rows of buildings on the horizon, the near row with lit windows."""
    r = c.rng("skyline")
    for depth in (0.5, 1.0):
        edges = np.cumsum(r.uniform(0.03, 0.1, 80))
        heights = r.uniform(0.05, 0.32, 81) * (1.25 - 0.35 * depth)
        col = np.searchsorted(edges, c.u[0])
        top = s.horizon - heights[col]
        a = ((c.v > top) & (c.v < s.horizon + 0.004)).astype(np.float32)
        c.blend(_mix(s.sky[-1], s.ground[-1] * 0.8, 0.4 + 0.6 * depth), a)
    wu, wv = c.u * 75, (c.v - s.horizon) * 110
    lit = r.random((256, 256)) < 0.25 + 0.25 * (c.steps / 50)
    on = lit[(wv.astype(int) % 256), (wu.astype(int) % 256)]
    windows = ((wu % 1 < 0.5) & (wv % 1 < 0.55) & on).astype(np.float32)
    colour = s.accents[col % len(s.accents)][None]  # each building its own window colour
    c.blend(colour, windows * a * (c.v > top + 0.01) * 0.9)


def _grid(c: _Canvas, s: _Scene):
    """A glowing perspective grid running to the horizon."""
    d = np.maximum(c.v - s.horizon, 1e-3)
    z = 0.5 / d  # distance along the floor seen at this height
    x = (c.u - c.aspect / 2) * z * 2.5
    # Distances to the nearest line, in floor units, turned into screen units for an even width.
    across, along = 0.5 - np.abs(z % 1 - 0.5), 0.5 - np.abs(x % 1 - 0.5)
    width = 0.003
    lines = np.exp(-((along / z / 2.5 / width) ** 2))
    lines += np.exp(-((across * d * d / 0.5 / width) ** 2))
    fade = _smooth(s.horizon + 0.01, s.horizon + 0.12, c.v)  # hide the moire where lines crowd
    c.glow(s.accents[0], np.minimum(lines, 1.5) * fade * 0.9)
    c.glow(s.accents[-1], np.exp(-(((c.v - s.horizon) / 0.01) ** 2)) * 0.8)


def _neon(c: _Canvas, s: _Scene):
    """Glowing wavy lines of saturated light across the sky."""
    r = c.rng("neon")
    for i in range(3 + c.steps // 15):
        y = r.uniform(0.1, 0.9) * s.horizon + 0.05 * np.sin(r.uniform(2, 9) * c.u + r.uniform(0, 6))
        dist = np.abs(c.v - y)
        light = np.exp(-((dist / 0.004) ** 2)) + 0.35 * np.exp(-dist / 0.03)
        c.glow(s.accents[i % len(s.accents)], light * 0.8)


def _flames(c: _Canvas, s: _Scene):
    """Tongues of fire rising from the bottom."""
    n = c.noise("flames", 2.5, stretch=(1.6, 0.6))
    fine = c.noise("flames-fine", 6.0, stretch=(1.5, 0.7))
    heat = np.clip((c.v - 0.3) + (n - 0.5) * 1.5 + (fine - 0.5) * 0.5, 0, 1)
    c.blend(_ramp(s.fire, heat), _smooth(0.0, 0.2, heat))


def _embers(c: _Canvas, s: _Scene):
    """Sparks drifting upwards."""
    c.glow(s.fire[-2], c.dots(c.rng("embers"), c.steps * 4, 0.05, 0.8) * 1.5)


def _flakes(c: _Canvas, s: _Scene):
    """Falling snowflakes."""
    layer = c.dots(c.rng("flakes"), c.steps * 12, 0, 1)
    c.blend([1, 1, 1], np.minimum(layer * 3, 1))


def _orbs(c: _Canvas, s: _Scene):
    """Translucent, softly shaded circles in the palette's colours."""
    r = c.rng("orbs")
    for i in range(3 + c.steps // 6):
        x, y = r.uniform(-0.1, c.aspect + 0.1), r.uniform(-0.1, 1.1)
        rad = r.uniform(0.04, 0.25) * (1 - i / 30) * c.unit
        where = c.box(x, y, rad, rad)
        d = np.hypot(c.u[:, where[1]] - x, c.v[where[0]] - y) / rad
        colour = s.accents[i % len(s.accents)] * (1.1 - 0.3 * np.clip(d, 0, 1))[..., None]
        c.blend(np.clip(colour, 0, 1), _smooth(1.0, 0.97, d) * r.uniform(0.35, 0.85), where)


def _rings(c: _Canvas, s: _Scene):
    """Concentric ripples around a point."""
    r = c.rng("rings")
    x, y = r.uniform(0.2, 0.8) * c.aspect, r.uniform(0.2, 0.8)
    d = np.hypot(c.u - x, c.v - y)
    ripple = _smooth(0.7, 1.0, np.sin(d * r.uniform(40, 70) * (0.7 + c.steps / 60)))
    c.blend(s.sky[-1], ripple * _smooth(0.6, 0.1, d) * 0.5)


def _hills(c: _Canvas, s: _Scene):
    """Abstract layered ridges for prompts without a scene."""
    _ridges(c, s, "ridges", s.sky[::-1], jagged=False)


# Painting order: far things first.
MOTIF_PAINTERS = [
    ("nebula", _nebula), ("stars", _stars), ("planet", _planet), ("moon", _moon), ("sun", _sun),
    ("clouds", _clouds), ("mountains", _mountains), ("dunes", _dunes), ("ridges", _hills),
    ("waves", _waves), ("grid", _grid), ("skyline", _skyline), ("trunks", _trunks),
    ("canopy", _canopy), ("mist", _mist), ("flames", _flames), ("neon", _neon),
    ("embers", _embers), ("flakes", _flakes), ("rings", _rings), ("orbs", _orbs),
]


def render(prompt: str, negative_prompt: str, seed: int, width: int, height: int,
           steps: int, cfg_scale: float) -> bytes:
    """Paint the parameters into an abstract picture and return it as PNG bytes."""
    words, negative = _words(prompt), _words(negative_prompt)
    c = _Canvas(width, height, [int(seed) & 0xFFFFFFFF, _int(" ".join(words))], int(steps))
    scene = _Scene(words, negative, horizon=float(c.rng("horizon").uniform(0.55, 0.7)))
    (_flow if scene.abstract else _background)(c, scene)
    for motif, paint in MOTIF_PAINTERS:
        if motif in scene.motifs:
            paint(c, scene)
    img = np.clip(c.img, 0, 1)
    img *= (1 - 0.3 * ((c.u / c.aspect - 0.5) ** 2 + (c.v - 0.5) ** 2))[..., None]  # vignette
    # cfg_scale: 7 is neutral; lower washes the picture out, higher makes it punchier.
    k = np.float32((max(cfg_scale, 0.1) / 7.0) ** 0.5)
    lum = (img @ np.float32([0.299, 0.587, 0.114]))[..., None]
    img = lum + (img - lum) * k
    img = lum.mean() + (img - lum.mean()) * (0.7 + 0.3 * k)
    pixels = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    picture = Image.fromarray(pixels).resize((int(width), int(height)), Image.BICUBIC)
    out = io.BytesIO()
    picture.save(out, "PNG", compress_level=1)
    return out.getvalue()


MODEL = Model(name="abstract", label="Abstract renderer", honours=frozenset(TUNABLE),
              notes="Deterministic abstract pictures painted from the prompt's words; no AI model.")


class OfflineProvider(Provider):
    """Always available: renders locally, needs no key and no network."""

    name = "offline"
    label = "Offline renderer (no AI model)"

    @property
    def models(self) -> list[Model]:
        """The one abstract renderer."""
        return [MODEL]

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Render the request; the seed given is the seed used."""
        data = render(request.prompt, request.negative_prompt, request.seed, request.width,
                      request.height, request.steps, request.cfg_scale)
        return GenerationResult(data=data, seed=request.seed)
