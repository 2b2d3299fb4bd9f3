"""Drawing the synthetic faces: signed-distance fields of every part, composited per render chunk.

Every shape is a signed-distance field in head-local units, evaluated for a chunk of faces at once
on a shared float32 pixel grid by broadcasting, and turned into coverage with a one-pixel linear
ramp - an analytic box-filter anti-alias, so nothing is supersampled. Layers are composited back
to front with "over"; small features are evaluated only on the rows they can reach and rare ones
only on the faces that have them (exact: the skipped pixels and faces would have had zero
coverage). Lighting shades the figure, not the background. Parameters and their meaning:
explorer.datasets.synthetic_faces.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Skin palette from palest to darkest, RGB in [0, 1]; skin_tone interpolates along it.
_SKIN_STOPS = np.array(
    [[250, 226, 214], [240, 200, 170], [222, 170, 128], [196, 136, 96], [140, 88, 58], [92, 58, 40]],
    np.float32,
) / 255.0

IRIS_COLORS = np.array([[70, 42, 24], [40, 80, 130], [60, 100, 60], [25, 20, 18]], np.float32) / 255.0
# Frames: black, steel, red, blue, gold - each differs from every skin stop by > 80 levels summed
# over RGB, so glasses read on any face (brown frames vanished on dark skin).
FRAME_COLORS = np.array([[20, 20, 22], [150, 150, 160], [160, 25, 35], [30, 50, 150], [205, 165, 45]],
                        np.float32) / 255.0

# Canvas half-widths per head unit at head_scale 1: the head (half-width 0.5, half-height 0.64 head
# units) then spans ~60 % of the width, like the 64 px CelebA crops DCGAN is usually trained on.
_HEAD_UNIT = 1.2


def _hls_to_rgb(hue: np.ndarray, light: np.ndarray, sat: np.ndarray) -> np.ndarray:
    """Vectorised colorsys.hls_to_rgb: (m,) arrays in [0, 1] -> (3, m) float32 RGB in [0, 1]."""
    q = np.where(light < 0.5, light * (1 + sat), light + sat - light * sat)
    p = 2 * light - q
    channels = []
    for offset in (1 / 3, 0.0, -1 / 3):
        t = (hue + offset) % 1.0
        c = np.where(t < 1 / 6, p + (q - p) * 6 * t,
                     np.where(t < 0.5, q, np.where(t < 2 / 3, p + (q - p) * (2 / 3 - t) * 6, p)))
        channels.append(c)
    return np.stack(channels).astype(np.float32)


def _ellipse(x: np.ndarray, y: np.ndarray, a, b) -> np.ndarray:
    """Signed distance to an axis-aligned ellipse with half-axes a, b, to first order.

    With k0 = |p / r| and k1 = |p / r^2|, k0 (k0 - 1) / k1 is the level-set offset divided by its
    gradient length (Quilez's approximation): exact on the axes and close to the curve, so the
    anti-alias ramp stays one pixel wide even on thin ellipses like hat brims. k0 / k1 lies in
    [min(a, b), max(a, b)]; the clip only matters at the centre, where both are 0.
    """
    inv_a, inv_b = 1.0 / a, 1.0 / b
    k0 = np.square(x * inv_a)
    k0 += np.square(y * inv_b)
    np.sqrt(k0, out=k0)
    k1 = np.square(x * (inv_a * inv_a))
    k1 += np.square(y * (inv_b * inv_b))
    np.sqrt(k1, out=k1)
    k1 += 1e-12
    ratio = np.divide(k0, k1, out=k1)
    np.clip(ratio, np.minimum(a, b), np.maximum(a, b), out=ratio)
    k0 -= 1.0
    k0 *= ratio
    return k0


def _grey(level: float, b: int) -> np.ndarray:
    return np.full((3, b, 1, 1), level, np.float32)


def _rgb_const(r: float, g: float, b: float) -> np.ndarray:
    """One colour for every face: (3, 1, 1, 1), broadcasting like a per-face (3, B, 1, 1) colour."""
    return np.array([r, g, b], np.float32).reshape(3, 1, 1, 1)


class Window:
    """Some faces x some rows of one render chunk: head-local coordinates and the image so far.

    Planes are (faces, rows, size) float32; per-face scalars in `p` are (faces, 1, 1) and per-face
    colours in `rgb` are (3, faces, 1, 1), so expressions broadcast over the pixels. Geometry is in
    head units: the head is an ellipse of half-width 0.5 * face_width and half-height 0.64 centred
    at the origin, y grows downward.
    """

    def __init__(self, p: dict[str, np.ndarray], rgb: dict[str, np.ndarray], X: np.ndarray,
                 Y: np.ndarray, U: np.ndarray, C: np.ndarray, A: np.ndarray, size: int) -> None:
        self.p, self.rgb, self.X, self.Y, self.U, self.C, self.A, self.size = p, rgb, X, Y, U, C, A, size
        # Signed distance (head units) -> pixels: one head unit spans unit * size / 2 pixels.
        self.px_per_unit = p["head_scale"] * (_HEAD_UNIT * size / 2.0)

    def cover(self, d: np.ndarray) -> np.ndarray:
        """Coverage in [0, 1]: a linear ramp one pixel wide across d = 0 (analytic box-filter AA)."""
        c = d * -self.px_per_unit
        c += 0.5
        return np.clip(c, 0.0, 1.0, out=c)

    def over(self, alpha: np.ndarray, colour: np.ndarray) -> None:
        """Composite a layer of coverage alpha (faces, rows, size) and colour (3, faces, 1, 1) on top."""
        tmp = colour - self.C
        tmp *= alpha
        self.C += tmp
        tmp = 1.0 - self.A
        tmp *= alpha
        self.A += tmp

    def rows(self, y_lo: float, y_hi: float) -> slice:
        """Canvas rows that can show head-local y in [y_lo, y_hi] (at |x| <= 1) for any face here.

        Everything a layer draws must lie inside its band, so skipping the other rows changes no
        pixel; 2 px of margin cover the anti-alias ramp.
        """
        unit = self.p["head_scale"] * _HEAD_UNIT
        cos_r, sin_r = np.cos(self.p["roll"]), np.abs(np.sin(self.p["roll"]))
        # canvas y = head_y + unit * (sin(roll) x + cos(roll) y), from inverting the roll rotation.
        top = np.min(self.p["head_y"] + unit * (cos_r * y_lo - sin_r))
        bottom = np.max(self.p["head_y"] + unit * (cos_r * y_hi + sin_r))
        to_row = self.size / 2.0  # canvas y -> row: row centre j sits at y = (j + 0.5) * 2 / size - 1
        first = int(np.floor((top + 1.0) * to_row - 0.5)) - 2
        last = int(np.ceil((bottom + 1.0) * to_row - 0.5)) + 2
        return slice(max(first, 0), max(min(last + 1, self.size), 0))

    def draw(self, layer: Callable[[Window], None], y_lo: float, y_hi: float,
             only: str | None = None) -> None:
        """Run layer(window) on the rows of [y_lo, y_hi], for all faces or those where p[only] is set.

        A full-width window holds views and draws in place; a face subset is gathered, drawn and
        scattered back - the faces left out would have drawn with zero coverage anyway.
        """
        rows = self.rows(y_lo, y_hi)
        if only is None:
            layer(Window(self.p, self.rgb, self.X[:, rows], self.Y[:, rows], self.U[:, rows],
                          self.C[:, :, rows], self.A[:, rows], self.size))
            return
        faces = np.flatnonzero(self.p[only].ravel() > 0)
        if faces.size == 0:
            return
        sub = Window({k: v[faces] for k, v in self.p.items()}, {k: v[:, faces] for k, v in self.rgb.items()},
                      self.X[faces, rows], self.Y[faces, rows], self.U[faces, rows],
                      self.C[:, faces, rows], self.A[faces, rows], self.size)
        layer(sub)
        self.C[:, faces, rows] = sub.C
        self.A[faces, rows] = sub.A


def _draw_figure(w: Window) -> None:
    """Hair behind the head, neck, shirt, ears, head and the hair lying over the head."""
    X, Y, U, p, rgb = w.X, w.Y, w.U, w.p, w.rgb
    male, a = p["Male"] > 0, 0.5 * p["face_width"]

    # Hair shape: male = a short cap of volume stopping at the temples; female = a dome plus
    # straight falls beside the face down past the chin (curving up toward the sides).
    vol = 0.04 + 0.08 * p["hair_length"]
    d_hair = _ellipse(X, Y + 0.06, np.where(male, a + vol, a * 1.22), np.where(male, 0.6 + vol, 0.7))
    np.maximum(d_hair, Y - np.where(male, -0.05, 5.0), out=d_hair)
    fall_end = np.where(male, -5.0, 0.55 + 0.55 * p["hair_length"])  # male: no falls
    d_fall = np.maximum(np.abs(X) - a * 1.2, -0.1 - Y)
    np.maximum(d_fall, Y - fall_end + 0.25 * np.square(X / (a * 1.2)), out=d_fall)
    np.minimum(d_hair, d_fall, out=d_hair)
    w.over(w.cover(d_hair), rgb["hair"])

    # Neck (in shadow under the chin) and shirt, with a round collar cut that shows the neck.
    w.over(w.cover(np.maximum(np.abs(X) - 0.21, 0.2 - Y)), rgb["skin"] * 0.8)
    d_shirt = np.maximum(_ellipse(X, Y - 1.55, 1.1, 0.75), -_ellipse(X, Y - 0.8, 0.25, 0.16))
    w.over(w.cover(d_shirt), rgb["shirt"])

    # Ears on the head sides, behind the head; the one on the side turning away narrows.
    ear_w = 0.08 * (1.0 - 1.5 * p["yaw"] * np.sign(X))
    w.over(w.cover(_ellipse(np.abs(X) - a * 0.97, Y - 0.02, ear_w, 0.13)), rgb["skin"] * 0.9)

    # Head: an ellipse whose lower half is squared off for males, via the squircle
    # x^2 + y^2 - k x^2 y^2 = 1 with k ramping in just below the centre (jaw only).
    u2, v2 = np.square(X / a), np.square(Y * (1 / 0.64))
    square = (0.75 * p["Male"]) * np.clip(Y * 4.0, 0.0, 1.0)
    # min(., 1) keeps the level function >= 1 outside the head for any k <= 1.
    square *= np.minimum(u2, 1.0)
    square *= np.minimum(v2, 1.0)
    level = u2 + v2 - square
    w.over(w.cover((np.sqrt(level) - 1.0) * np.minimum(a, 0.64)), rgb["skin"])

    # Hair over the head: the hair shape minus the face opening, whose top edge is the hairline
    # (at y = -0.46; males' opening is wider than the head so the sides stay bare). Bangs cut the
    # opening with a jagged fringe reaching down to the brows. In U so the hairline turns with yaw.
    d_open = _ellipse(U, Y - 0.3, np.where(male, a * 1.3, a * 0.86), 0.76)
    tri = np.abs((U * 10.0) % 2.0 - 1.0)  # triangle wave in [0, 1], period 0.2 head units
    fringe = np.where(p["Bangs"] > 0, -0.26, -5.0) + 0.06 * tri
    np.maximum(d_open, fringe - Y, out=d_open)
    w.over(w.cover(np.maximum(d_hair, -d_open)), rgb["hair"])
    # A darker rim along the hairline/fringe (0.035 head units, ~1.3 px at 64 px): hair that is
    # close to the skin colour (blond on tan) still shows where it ends.
    rim = np.abs(d_open - 0.0175)
    rim -= 0.0175
    np.maximum(rim, d_hair, out=rim)
    w.over(w.cover(rim), rgb["hair"] * 0.5)


_EYE_Y = -0.08  # eye centre height, head units


def _draw_eyes(w: Window) -> None:
    """Eye whites, irises (shifted with yaw: the gaze follows the turn), lid lines, brows, nose."""
    Y, U, p, rgb = w.Y, w.U, w.p, w.rgb
    e, male = p["eye_spacing"], p["Male"]
    absU = np.abs(U)
    d_eye = _ellipse(absU - e, Y - _EYE_Y, 0.1, 0.055)
    w.over(w.cover(d_eye), rgb["white"])
    d_iris = np.hypot(np.abs(U - 0.06 * p["yaw"]) - e, Y - _EYE_Y) - 0.05
    w.over(w.cover(np.maximum(d_iris, d_eye)), rgb["iris"])
    lid = 0.012 + 0.012 * (1 - male)  # female: heavier lash line
    w.over(w.cover(np.maximum(np.abs(d_eye) - lid, Y - _EYE_Y)), _grey(0.08, len(e)))

    # Brows: arched capsules, thicker and lower for males.
    bx = absU - e
    by = Y - (_EYE_Y - 0.125 + 0.02 * male) + 1.2 * np.square(bx)  # arch: the ends droop
    d_brow = np.hypot(np.maximum(np.abs(bx) - 0.09, 0.0), by) - (0.02 + 0.018 * male)
    w.over(w.cover(d_brow), rgb["brow"])

    # Nose: a soft darker tip.
    w.over(w.cover(_ellipse(U, Y - 0.17, 0.065, 0.04)) * 0.7, rgb["skin"] * 0.7)


_MOUTH_Y = 0.36  # mouth centre-line height at the middle, head units


def _mouth_shape(p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mouth half-width, corner lift and lip half-thickness (head units).

    Smiling widens the mouth, lifts the corners by ~3.5 px at 64 px and thickens the lip line.
    """
    smiling = p["Smiling"]
    return p["mouth_width"] * (0.14 + 0.04 * smiling), 0.015 + 0.075 * smiling, 0.024 + 0.006 * smiling


def _mouth_line(w: Window) -> tuple[np.ndarray, np.ndarray]:
    """The lip line y = _MOUTH_Y - curve (U / half_width)^2 and the mouth's U / half_width."""
    half_w, curve, _ = _mouth_shape(w.p)
    un = w.U / half_w
    return _MOUTH_Y - curve * np.square(un), un


def _draw_open_mouth(w: Window) -> None:
    """A dark gap under the lip line (deeper when smiling): teeth under the upper lip, a lower lip."""
    line_y, un = _mouth_line(w)
    half_w, _, lip = _mouth_shape(w.p)
    gap = 0.06 + 0.1 * w.p["Smiling"]  # depth below the lip line at the middle; the upper lip hides `lip`
    bulge = np.maximum(1.0 - np.square(un), 0.0)  # the gap closes toward the corners
    lower = line_y + gap * bulge
    outside = np.abs(w.U) - half_w
    d_gap = np.maximum(np.maximum(line_y - w.Y, w.Y - lower), outside)
    w.over(w.cover(d_gap), w.rgb["mouth"])
    teeth_bottom = line_y + (lip + 0.4 * (gap - lip)) * bulge
    w.over(w.cover(np.maximum(d_gap, w.Y - teeth_bottom)), w.rgb["white"])
    w.over(w.cover(np.maximum(np.abs(w.Y - lower) - 0.8 * lip, outside)), w.rgb["lips"])


def _draw_lips(w: Window) -> None:
    """The upper lip: a band along the lip line (a slight line when neutral, a curve when smiling)."""
    line_y, _ = _mouth_line(w)
    half_w, curve, lip = _mouth_shape(w.p)
    # Distance to the curve: vertical offset over |grad| of y - line_y(U).
    slope = 2.0 * curve * w.U / np.square(half_w)
    d_line = np.abs(w.Y - line_y) / np.sqrt(1.0 + np.square(slope))
    outside = np.abs(w.U) - half_w
    w.over(w.cover(np.maximum(d_line - lip, outside)), w.rgb["lips"])
    # The crease between the lips, darker than any skin tone, so the curve reads on dark skin too.
    w.over(w.cover(np.maximum(d_line - 0.35 * lip, outside)), w.rgb["skin"] * 0.25)


def _draw_mustache(w: Window) -> None:
    """A band under the nose following the lip line, a bit wider than the mouth."""
    half_w, curve, _ = _mouth_shape(w.p)
    m_half = half_w + 0.05
    mu2 = np.square(w.U / m_half)
    top = (_MOUTH_Y - 0.125) + 0.03 * mu2
    bottom = (_MOUTH_Y - 0.03) - 0.5 * curve * mu2
    d = np.maximum(np.maximum(top - w.Y, w.Y - bottom), np.abs(w.U) - m_half)
    w.over(w.cover(d), w.rgb["brow"])


def _draw_glasses(w: Window) -> None:
    """Tinted lenses (sunglasses nearly opaque), frame rings, bridge and temples to the ears."""
    X, Y, U, p = w.X, w.Y, w.U, w.p
    e, absU = p["eye_spacing"], np.abs(U)
    d_lens = _ellipse(absU - e, Y - (_EYE_Y + 0.01), 0.15, 0.115)
    tint = np.where(p["sunglasses"] > 0, 0.88, 0.12)
    w.over(w.cover(d_lens) * tint, w.rgb["lens"])
    half_t = 0.024  # frame half-thickness: ~1.7 px wide at 64 px
    d_frame = np.abs(d_lens) - half_t
    d_bridge = np.maximum(np.abs(Y - (_EYE_Y - 0.02)) - half_t, absU - (e - 0.13))
    d_temple = np.maximum(np.abs(Y - (_EYE_Y - 0.03)) - half_t * 0.8, (e + 0.14) - absU)
    np.maximum(d_temple, np.abs(X) - 0.49 * p["face_width"], out=d_temple)  # stop at the ears
    np.minimum(d_frame, d_bridge, out=d_frame)
    np.minimum(d_frame, d_temple, out=d_frame)
    w.over(w.cover(d_frame), w.rgb["frame"])


def _draw_hat(w: Window) -> None:
    """Crown over the top of the head down to the brim line, the brim, and a darker band."""
    X, Y, p = w.X, w.Y, w.p
    style, a = p["hat_style"], 0.5 * p["face_width"]
    beanie, cap = style == 0, style == 1
    brim_y = np.where(style == 2, -0.36, -0.3)
    crown_h = np.where(style == 2, 0.44, 0.36)  # crown height above the brim line
    d_crown = np.maximum(_ellipse(X, Y - brim_y, a * 1.12, crown_h), Y - brim_y)
    brim_a = a * np.select([beanie, cap], [1.12, 1.3], 1.65)
    brim_b = np.select([beanie, cap], [0.08, 0.07], 0.09)
    # A cap's brim sticks out forward, so it follows the yaw-shifted frontal coordinate.
    d_brim = _ellipse(np.where(cap, w.U, X), Y - brim_y, brim_a, brim_b)
    w.over(w.cover(np.minimum(d_crown, d_brim)), w.rgb["hat"])
    w.over(w.cover(np.maximum(d_crown, (brim_y - 0.1) - Y)), w.rgb["hat"] * 0.6)


def render_chunk(params: dict[str, np.ndarray], size: int) -> np.ndarray:
    """One chunk of faces -> uint8 (B, size, size, 3)."""
    B = len(params["yaw"])
    p = {k: np.asarray(v, np.float32).reshape(B, 1, 1) for k, v in params.items()}

    def hls(hue, light, sat) -> np.ndarray:  # (B,) arrays or scalars -> (3, B, 1, 1) RGB
        return _hls_to_rgb(*np.broadcast_arrays(hue, light, sat)).reshape(3, B, 1, 1)

    tone = params["skin_tone"].astype(np.float32) * (len(_SKIN_STOPS) - 1)
    stops = np.arange(len(_SKIN_STOPS))
    skin = np.stack([np.interp(tone, stops, _SKIN_STOPS[:, c]) for c in range(3)]).reshape(3, B, 1, 1)
    hair = hls(params["hair_hue"], params["hair_lightness"], params["hair_saturation"])
    male = p["Male"][None]
    rgb = {
        "skin": skin.astype(np.float32),
        "hair": hair,
        # Brows and mustache: darker than the hair and than the skin, so they read on any face.
        "brow": np.minimum(hair * 0.55 + 0.03, skin * 0.55),
        "shirt": hls(params["shirt_hue"], params["shirt_lightness"], 0.45),
        "hat": hls(params["hat_hue"], 0.45, 0.65),
        "iris": IRIS_COLORS[params["iris_color"]].T.reshape(3, B, 1, 1) * 0.7,
        "frame": FRAME_COLORS[params["frame_color"]].T.reshape(3, B, 1, 1),
        "lens": np.broadcast_to(_rgb_const(0.1, 0.12, 0.16), (3, B, 1, 1)),
        # Lips: well darker than the skin so the mouth's shape reads on every skin tone; redder on
        # females (lipstick).
        "lips": skin * 0.3 + _rgb_const(0.16, 0.0, 0.02) + _rgb_const(0.12, 0.0, 0.03) * (1.0 - male),
        "mouth": np.broadcast_to(_rgb_const(0.2, 0.04, 0.06), (3, B, 1, 1)),
        "white": _grey(0.95, B),
    }
    rgb = {k: np.asarray(v, np.float32) for k, v in rgb.items()}

    # Canvas coordinates of pixel centres in [-1, 1], y down. Head-local = canvas shifted to the head
    # centre, divided by head_scale * _HEAD_UNIT and rotated by roll.
    grid = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(2.0 / size) - 1.0
    gx, gy = grid.reshape(1, 1, size), grid.reshape(1, size, 1)
    unit = p["head_scale"] * _HEAD_UNIT  # canvas half-widths per head unit
    x0, y0 = (gx - p["head_x"]) / unit, (gy - p["head_y"]) / unit
    cos_r, sin_r = np.cos(p["roll"]), np.sin(p["roll"])
    X = cos_r * x0 + sin_r * y0  # (B, S, S)
    Y = cos_r * y0 - sin_r * x0

    # Yaw: the face is a cylinder of radius a seen from the front; screen x = a sin(theta + yaw), so
    # the frontal coordinate U = a sin(theta) = a (t cos(yaw) - sqrt(1 - t^2) sin(yaw)) with t = x / a.
    # Features drawn in U shift by a sin(yaw) and are squashed on the side turning away. Beyond the
    # head's sides U carries on 1:1 with x, so shapes reaching past them (hairline, temples) stay
    # continuous instead of smearing along a constant U.
    a = 0.5 * p["face_width"]
    t = np.clip(X / a, -1.0, 1.0)
    U = np.sqrt(1.0 - np.square(t))
    U *= -np.sin(p["yaw"])
    U += t * np.cos(p["yaw"])
    t *= a
    U *= a
    U += X
    U -= t

    # Foreground colour C (premultiplied, (3, B, S, S)) and coverage A are built back to front with
    # "over"; the background goes in last so that lighting shades only the figure.
    C = np.zeros((3, B, size, size), np.float32)
    A = np.zeros((B, size, size), np.float32)
    w = Window(p, rgb, X, Y, U, C, A, size)
    # Head-local y bands (with |x| <= 1) that contain everything each layer draws; see Window.rows.
    w.draw(_draw_figure, -2.0, 2.0)
    w.draw(_draw_eyes, -0.28, 0.23)
    w.draw(_draw_open_mouth, 0.24, 0.58, only="Mouth_Slightly_Open")
    w.draw(_draw_lips, 0.24, 0.41)
    w.draw(_draw_mustache, 0.22, 0.35, only="Mustache")
    w.draw(_draw_glasses, -0.22, 0.08, only="Eyeglasses")
    w.draw(_draw_hat, -0.82, -0.19, only="Wearing_Hat")

    # Lighting: a horizontal gradient across the figure, up to +-30 %.
    C *= 1.0 + 0.3 * p["lighting"] * np.clip(X / (a * 1.2), -1.0, 1.0)

    # Background: HLS colour with a +-25 % linear ramp along background_angle.
    back = hls(params["background_hue"], params["background_lightness"], params["background_saturation"])
    ramp = np.cos(p["background_angle"]) * gx + np.sin(p["background_angle"]) * gy  # (B, S, S)
    ramp *= 0.25
    ramp += 1.0
    ramp *= 1.0 - A
    C += back * ramp

    C *= 255.0
    C += 0.5
    np.clip(C, 0.0, 255.0, out=C)
    return np.ascontiguousarray(C.astype(np.uint8).transpose(1, 2, 3, 0))
