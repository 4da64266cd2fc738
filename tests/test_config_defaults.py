"""One place per fact: each default is written once (edge/vision/settings.py, edge/mqttaddress.py).

The config models, the stage constructors and the connection settings read their defaults from those
dataclasses. These tests fail when someone writes a default again (with another value) in a second place.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
from pydantic import BaseModel

from edge.central.config import CentralMqttConfig
from edge.central.consumer import BrokerSettings
from edge.config import BrokerLink, DetectorConfig, EventsConfig, MotionConfig, MqttConfig, TrackerConfig
from edge.mqttaddress import BrokerAddress
from edge.outbox.publisher import MqttSettings
from edge.vision.detector import Detector
from edge.vision.events import EventBuilder
from edge.vision.motion import MotionDetector
from edge.vision.settings import AnalyzerSettings, DetectorSettings, EventSettings, MotionSettings, TrackerSettings
from edge.vision.tracker import Tracker


def _plain(value: Any) -> Any:
    """Lists as tuples (TOML gives lists, the frozen dataclasses keep tuples), recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: _plain(getattr(cls(), f.name)) for f in dataclasses.fields(cls)}


# (config model, settings dataclass, config key for a field whose name differs, fields with no config key here)
CONFIG_PAIRS = [
    (MotionConfig, MotionSettings, {"analysis_height": "height"}, set()),
    (TrackerConfig, TrackerSettings, {}, set()),
    (EventsConfig, EventSettings, {}, {"zones", "lines", "best_shots"}),  # per camera / set by the node
    (DetectorConfig, DetectorSettings, {}, set()),
    (DetectorConfig, AnalyzerSettings, {}, {"motion", "tracker", "events"}),  # sections of their own
    (BrokerLink, BrokerAddress, {}, set()),
]


@pytest.mark.parametrize(("model", "settings", "renamed", "elsewhere"), CONFIG_PAIRS,
                         ids=[f"{m.__name__}-{s.__name__}" for m, s, _, _ in CONFIG_PAIRS])
def test_config_defaults_are_the_settings_defaults(model: type[BaseModel], settings: type, renamed: dict[str, str],
                                                   elsewhere: set[str]) -> None:
    config = model()
    for name, value in _defaults(settings).items():
        if name in elsewhere:
            continue
        key = renamed.get(name, name)
        assert key in type(config).model_fields, f"{settings.__name__}.{name} has no {model.__name__}.{key}"
        assert _plain(getattr(config, key)) == value, f"{model.__name__}.{key} default differs from {settings.__name__}"


# (constructor, settings dataclass, parameter name for a field whose name differs, fields it does not take)
STAGE_PAIRS = [
    (MotionDetector, MotionSettings, {"mask": "mask_polygons"}, set()),
    (Tracker, TrackerSettings, {}, set()),
    (EventBuilder, EventSettings, {}, {"zones", "lines"}),  # None there: no zones, no lines
    (Detector, DetectorSettings, {"labels": "keep_labels"}, set()),
]


@pytest.mark.parametrize(("stage", "settings", "renamed", "elsewhere"), STAGE_PAIRS,
                         ids=[s.__name__ for s, _, _, _ in STAGE_PAIRS])
def test_stage_defaults_are_the_settings_defaults(stage: type, settings: type, renamed: dict[str, str],
                                                  elsewhere: set[str]) -> None:
    params = inspect.signature(stage.__init__).parameters
    for name, value in _defaults(settings).items():
        if name in elsewhere:
            continue
        param = params[renamed.get(name, name)]
        assert _plain(param.default) == value, f"{stage.__name__}({param.name}=...) default differs"


@pytest.mark.parametrize("settings", [MqttSettings, BrokerSettings])
def test_broker_settings_build_on_one_address(settings: type) -> None:
    assert issubclass(settings, BrokerAddress)
    shared = {f.name for f in dataclasses.fields(BrokerAddress)}
    own = {k: v for k, v in vars(settings).items() if k in shared}
    assert not own, f"{settings.__name__} redefines {sorted(own)}: the default belongs to BrokerAddress"


@pytest.mark.parametrize(("model", "settings", "elsewhere"), [
    (MqttConfig, MqttSettings, {"client_id"}),  # the node's: "edgecam-<node id>" (Config.client_id)
    (CentralMqttConfig, BrokerSettings, set()),
])
def test_mqtt_config_and_settings_agree(model: type[BaseModel], settings: type, elsewhere: set[str]) -> None:
    """The keys each side has beyond the address (timeouts, client id, session) default the same too."""
    config, defaults = model(), _defaults(settings)
    common = (set(defaults) & set(type(config).model_fields)) - elsewhere
    assert common >= {f.name for f in dataclasses.fields(BrokerAddress)}
    for name in common:
        assert _plain(getattr(config, name)) == defaults[name], f"{model.__name__}.{name} != {settings.__name__}"
