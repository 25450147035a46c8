"""The text query's own diffusion settings as the CLI spells them, and the check of a noise schedule: kept apart
from `diffdis.config` (which uses `check_schedule`) so that module stays the list of fields."""

from __future__ import annotations

import json
import math
from typing import Any

from diffdis.errors import UsageError
from diffdis.presets import preset_fields

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


def check_schedule(schedule: Any, name: str) -> None:
    """Refuse, in one line, a noise schedule that diffusers' DDPMScheduler would reject or misread."""
    if not isinstance(schedule, dict):
        raise UsageError(f"{name} must be a JSON object of DDPMScheduler settings, got {schedule!r}")
    allowed = {
        "num_train_timesteps",
        "beta_schedule",
        "beta_start",
        "beta_end",
        "steps_offset",
        "rescale_betas_zero_snr",
    }
    unknown = sorted(set(schedule) - allowed)
    if unknown:
        raise UsageError(f"{name}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    steps = schedule.get("num_train_timesteps", 1000)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise UsageError(f"{name}: num_train_timesteps must be an integer >= 2, got {steps!r}")
    kind = schedule.get("beta_schedule", "linear")
    if kind not in BETA_SCHEDULES:
        raise UsageError(f"{name}: beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, got {kind!r}")
    start, end = schedule.get("beta_start", 1e-4), schedule.get("beta_end", 0.02)
    if (
        not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in (start, end))
        or not 0 < start <= end < 1
    ):
        raise UsageError(f"{name}: need 0 < beta_start <= beta_end < 1, got {start!r}, {end!r}")


QUERY_SCHEDULE_NAMES = ("image", "linear", "scaled-linear", "cosine")


def named_query_schedule(name: str) -> dict[str, Any] | None:
    """image: share the image's (the paper); linear: the pixel presets'; scaled-linear: SD's; cosine: iDDPM's.
    The first two are read from the preset files, not from `diffdis.config`, which imports this module."""
    if name in ("linear", "scaled-linear"):
        fields = preset_fields("tiny" if name == "linear" else "sd15")
        assert fields is not None, "diffdis/presets/ is missing from the installed package"
        return fields["schedule"]
    return {"image": None, "cosine": {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"}}[name]


def parse_query_schedule(text: str) -> dict[str, Any] | None:
    """`--query-schedule`: a name (image, linear, scaled-linear, cosine) or a JSON object of DDPMScheduler kwargs."""
    if text in QUERY_SCHEDULE_NAMES:
        return named_query_schedule(text)
    try:
        schedule = json.loads(text)
    except json.JSONDecodeError:
        raise UsageError(
            f"--query-schedule must be one of {', '.join(QUERY_SCHEDULE_NAMES)} or a JSON object, got {text!r}"
        ) from None
    check_schedule(schedule, "--query-schedule")
    return schedule


def parse_query_scale(text: str) -> float | str:
    """`--query-scale`: a positive number, or "sqrt-d" for unit variance per dimension (gamma = sqrt(d))."""
    if text == "sqrt-d":
        return text
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--query-scale must be a positive number or 'sqrt-d', got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"--query-scale must be a positive number or 'sqrt-d', got {text!r}")
    return value
