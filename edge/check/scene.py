"""The camera's scene against its motion settings: is it too dark to see a person at night?"""

from __future__ import annotations

import numpy as np

from ..vision.motion import scene_light
from .result import OK, WARN, Result


def probe_scene(name: str, image: np.ndarray, analysis_height: int, threshold: int, low_light: bool) -> Result:
    """One frame's brightness and contrast range, and the grey-level change motion needs with these settings."""
    light = scene_light(image, analysis_height, threshold, low_light)
    adapted = f", low light x{light.gain:.1f}" if light.gain > 1.0 else (", low light off" if not low_light else "")
    detail = (f"brightness {light.brightness:.0f}/255, contrast range {light.contrast_range:.0f}: "
              f"motion needs a change of {light.threshold:.1f} grey levels{adapted}")
    data = {"brightness": round(light.brightness, 1), "contrast_range": round(light.contrast_range, 1),
            "gain": round(light.gain, 2), "motion_threshold": round(light.threshold, 2), "too_dark": light.too_dark}
    if not light.too_dark:
        return Result(f"scene {name}", OK, detail, data=data)
    if not low_light:
        advice = f"too dark for these settings: set cameras.{name}.motion.low_light = true"
    else:
        advice = ("too dark even with low-light adaptation: switch the camera's IR / night mode on, add light, "
                  f"or lower cameras.{name}.motion.threshold")
    return Result(f"scene {name}", WARN, "too dark for the motion settings: " + detail, advice, data=data)
