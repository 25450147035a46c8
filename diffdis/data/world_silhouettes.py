"""The world's silhouettes: each CIFAR-10 object and simple shape as parts in roles (body, shade, light,
dark) in object units, facing right. Pure geometry, kept apart from how it is placed and painted (`world_drawing`).
"""

from __future__ import annotations

import math

Point = tuple[float, float]
Part = tuple[str, list[Point], float]  # (role, points, line width in object units; 0 = filled polygon)


# --- silhouettes, facing right, in object units (x right, y down, about [-1, 1]) ---


def _ell(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> list[Point]:
    return [(cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n)) for k in range(n)]


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _mirror_y(points: list[Point]) -> list[Point]:
    return [(x, -y) for x, y in points]


def _legs(xs: tuple[float, ...], top: float, bottom: float, width: float) -> list[Part]:
    return [("body", [(x, top), (x, bottom)], width) for x in xs]


def _airplane() -> list[Part]:  # seen from above: fuselage, swept wings, tailplane
    wing = [(0.22, -0.08), (-0.18, -0.88), (-0.4, -0.88), (-0.24, -0.08)]
    tail = [(-0.66, -0.05), (-0.86, -0.4), (-1.0, -0.4), (-0.92, -0.05)]
    return [
        ("body", _ell(0, 0, 1.0, 0.13), 0),
        ("body", wing, 0),
        ("body", _mirror_y(wing), 0),
        ("body", tail, 0),
        ("body", _mirror_y(tail), 0),
    ]


def _automobile() -> list[Part]:  # body with cabin, two windows, two wheels
    body = [
        (-0.97, 0.05),
        (-0.92, -0.14),
        (-0.5, -0.17),
        (-0.3, -0.5),
        (0.3, -0.5),
        (0.55, -0.17),
        (0.92, -0.1),
        (0.98, 0.05),
        (0.96, 0.3),
        (-0.97, 0.3),
    ]
    return [
        ("body", body, 0),
        ("light", [(-0.4, -0.2), (-0.25, -0.42), (-0.04, -0.42), (-0.04, -0.2)], 0),
        ("light", [(0.04, -0.2), (0.04, -0.42), (0.25, -0.42), (0.44, -0.2)], 0),
        ("dark", _ell(-0.55, 0.3, 0.22, 0.22), 0),
        ("dark", _ell(0.55, 0.3, 0.22, 0.22), 0),
    ]


def _truck() -> list[Part]:  # tall cargo box, separate cab in front, three wheels
    cab = [(0.44, 0.25), (0.44, -0.32), (0.72, -0.32), (0.96, -0.05), (0.98, 0.25)]
    return [
        ("body", _rect(-0.98, -0.62, 0.36, 0.22), 0),
        ("body", cab, 0),
        ("body", _rect(-0.98, 0.12, 0.98, 0.3), 0),
        ("light", [(0.52, -0.25), (0.7, -0.25), (0.86, -0.05), (0.52, -0.05)], 0),
    ] + [("dark", _ell(x, 0.32, 0.18, 0.18), 0) for x in (-0.72, -0.32, 0.7)]


def _ship() -> list[Part]:  # pointed hull, superstructure with a window band, funnel, mast
    hull = [(-0.95, 0.05), (1.0, 0.02), (0.75, 0.45), (-0.82, 0.45)]
    return [
        ("body", hull, 0),
        ("body", _rect(-0.6, -0.28, 0.4, 0.06), 0),
        ("body", _rect(-0.42, -0.52, 0.12, -0.25), 0),
        ("body", _rect(-0.3, -0.85, -0.08, -0.5), 0),
        ("dark", _rect(-0.3, -0.85, -0.08, -0.74), 0),
        ("body", [(0.28, -0.28), (0.28, -0.78)], 0.07),
        ("light", _rect(-0.52, -0.17, 0.3, -0.07), 0),
        ("shade", _rect(-0.9, 0.2, 0.86, 0.26), 0),
    ]


def _bird() -> list[Part]:  # round body, head, pointed beak, long tail, folded wing, thin legs
    return [
        ("body", [(-0.35, -0.02), (-1.0, 0.28), (-0.94, 0.46), (-0.3, 0.26)], 0),
        ("body", _ell(-0.05, 0.05, 0.52, 0.34), 0),
        ("body", _ell(0.42, -0.3, 0.27, 0.26), 0),
        ("dark", [(0.62, -0.4), (0.98, -0.27), (0.62, -0.18)], 0),
        ("shade", [(0.28, -0.08), (-0.62, 0.05), (-0.2, 0.3), (0.18, 0.22)], 0),
        ("dark", _ell(0.5, -0.36, 0.07, 0.07), 0),
        ("dark", [(-0.08, 0.35), (-0.1, 0.72)], 0.07),
        ("dark", [(0.12, 0.35), (0.16, 0.72)], 0.07),
    ]


def _cat() -> list[Part]:  # sitting: upright body, round head with two pointed ears, tail curled up beside
    return [
        ("body", _ell(-0.05, 0.28, 0.4, 0.52), 0),
        ("body", _ell(-0.18, 0.58, 0.45, 0.26), 0),
        ("body", _ell(0.2, -0.4, 0.32, 0.28), 0),
        ("body", [(-0.08, -0.52), (-0.02, -1.0), (0.2, -0.64)], 0),
        ("body", [(0.24, -0.64), (0.46, -1.0), (0.52, -0.5)], 0),
        ("body", [(0.26, 0.25), (0.3, 0.82)], 0.16),
        ("body", [(-0.5, 0.76), (-0.82, 0.66), (-0.95, 0.36), (-0.86, 0.06)], 0.13),
    ]


def _dog() -> list[Part]:  # standing: body, four legs, short neck, head with long snout, floppy ear, raised tail
    return [
        ("body", _ell(-0.1, 0.0, 0.54, 0.26), 0),
        *_legs((-0.52, -0.32, 0.14, 0.32), 0.1, 0.62, 0.13),
        ("body", [(0.18, -0.15), (0.42, -0.48), (0.62, -0.36), (0.42, 0.06)], 0),
        ("body", _ell(0.55, -0.46, 0.22, 0.19), 0),
        ("body", [(0.6, -0.58), (0.98, -0.48), (0.98, -0.32), (0.6, -0.3)], 0),
        ("dark", _ell(0.96, -0.46, 0.06, 0.06), 0),
        ("shade", [(0.42, -0.6), (0.55, -0.58), (0.5, -0.22), (0.38, -0.26)], 0),
        ("body", [(-0.6, -0.1), (-0.8, -0.36), (-0.86, -0.56)], 0.1),
    ]


def _horse() -> list[Part]:  # standing tall: long legs, long raised neck with mane, long face, hanging tail
    return [
        ("body", _ell(-0.1, -0.05, 0.58, 0.26), 0),
        *_legs((-0.52, -0.34, 0.2, 0.36), 0.05, 0.9, 0.11),
        ("body", [(0.18, -0.22), (0.42, -0.82), (0.64, -0.76), (0.5, 0.05)], 0),
        ("body", [(0.42, -0.86), (0.62, -0.94), (0.98, -0.58), (0.92, -0.44), (0.56, -0.6)], 0),
        ("body", [(0.48, -0.86), (0.5, -1.02), (0.6, -0.9)], 0),
        ("shade", [(0.44, -0.9), (0.34, -0.82), (0.08, -0.22), (0.22, -0.18)], 0),
        ("shade", [(-0.64, -0.16), (-0.84, 0.05), (-0.9, 0.5)], 0.14),
    ]


def _deer() -> list[Part]:  # slender: long thin legs, short tail, upright neck, small head, big branching antlers
    antlers = [
        [(0.42, -0.55), (0.3, -0.78), (0.12, -0.98), (-0.12, -1.08)],
        [(0.34, -0.72), (0.48, -0.96)],
        [(0.2, -0.92), (0.28, -1.18)],
        [(0.02, -1.03), (0.02, -1.25)],
        [(0.5, -0.55), (0.62, -0.8), (0.66, -1.06)],
        [(0.61, -0.78), (0.8, -0.92)],
    ]
    return [
        ("body", _ell(-0.14, 0.05, 0.42, 0.2), 0),
        *_legs((-0.44, -0.3, 0.06, 0.18), 0.1, 1.0, 0.07),
        ("body", [(0.08, -0.06), (0.34, -0.5), (0.5, -0.44), (0.32, 0.06)], 0),
        ("body", [(0.32, -0.56), (0.5, -0.62), (0.8, -0.4), (0.74, -0.32), (0.44, -0.38)], 0),
        ("body", [(0.36, -0.52), (0.16, -0.6), (0.3, -0.44)], 0),
        ("body", [(-0.52, -0.06), (-0.66, -0.24), (-0.54, 0.06)], 0),
        *[("shade", a, 0.07) for a in antlers],
    ]


def _frog() -> list[Part]:  # from the front: squat wide body, bulging eyes on top, folded haunches, splayed feet
    eye_rings = (("body", 0.25), ("light", 0.16), ("dark", 0.08))
    eyes = [(role, _ell(x, -0.45, r, r), 0) for role, r in eye_rings for x in (-0.36, 0.36)]
    feet = [("body", [(sx * 0.55, 0.66), (sx * 1.0, 0.72)], 0.14) for sx in (-1, 1)]
    haunches = [("body", _ell(sx * 0.55, 0.42, 0.38, 0.24), 0) for sx in (-1, 1)]
    arms = [("body", [(sx * 0.22, 0.3), (sx * 0.26, 0.74)], 0.16) for sx in (-1, 1)]
    return [
        *feet,
        *haunches,
        ("body", _ell(0, 0.05, 0.66, 0.42), 0),
        *arms,
        *eyes,
        ("dark", [(-0.36, 0.06), (0.0, 0.16), (0.36, 0.06)], 0.06),
    ]


def _star() -> list[Point]:
    return [(r * math.sin(math.pi * k / 5), -r * math.cos(math.pi * k / 5)) for k, r in zip(range(10), [1.0, 0.42] * 5)]


SILHOUETTES = {
    "airplane": _airplane(),
    "automobile": _automobile(),
    "bird": _bird(),
    "cat": _cat(),
    "deer": _deer(),
    "dog": _dog(),
    "frog": _frog(),
    "horse": _horse(),
    "ship": _ship(),
    "truck": _truck(),
    "circle": [("body", _ell(0, 0, 1, 1, 48), 0)],
    "square": [("body", _rect(-1, -1, 1, 1), 0)],
    "triangle": [("body", [(0, -1), (1, 0.8), (-1, 0.8)], 0)],
    "star": [("body", _star(), 0)],
}
