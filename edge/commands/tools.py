"""``edgecam events tail``, ``edgecam bench`` and ``edgecam plates read``: tools around the node.

Heavy imports (paho, numpy, onnxruntime, OpenCV) happen inside each handler,
so ``edgecam --help`` and the stdlib-only commands stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import UserError


def events_tail(args: argparse.Namespace) -> int:
    """``edgecam events tail``: one line (or JSON object) per event until --count or Ctrl-C."""
    import paho.mqtt.client as mqtt

    from ..outbox.publisher import MqttSettings, connect, make_client
    from ..outbox.tail import format_event, parse_broker
    from ..payload import node_from_topic

    host, port = parse_broker(args.broker, args.tls)
    settings = MqttSettings(
        host=host, port=port, prefix=args.prefix, client_id=f"edgecam-tail-{os.getpid()}",
        username=args.user, password_file=Path(args.password_file) if args.password_file else None,
        tls=args.tls, ca_file=Path(args.ca_file) if args.ca_file else None,
        cert_file=Path(args.cert_file) if args.cert_file else None,
        key_file=Path(args.key_file) if args.key_file else None, connect_timeout=5.0,
    )
    try:
        client = make_client(settings, persistent=False)
        error = connect(client, settings, persistent=False)
    except (OSError, ValueError) as err:
        raise UserError(str(err)) from None
    if error:
        raise UserError(error)
    topic = f"{args.prefix}/{args.node or '+'}/events"
    seen = [0]

    def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        if node_from_topic(args.prefix, m.topic) is None:
            return
        try:
            msg = json.loads(m.payload)
        except ValueError:
            print(f"(not JSON on {m.topic}: {len(m.payload)} bytes)", file=sys.stderr)
            return
        print(json.dumps(msg, separators=(",", ":")) if args.json else format_event(msg), flush=True)
        seen[0] += 1

    client.on_message = on_message
    client.on_subscribe = lambda *_a: print(f"listening on {topic} at {host}:{port} (Ctrl-C to stop)",
                                            file=sys.stderr, flush=True)
    client.subscribe(topic, qos=1)
    try:
        while not args.count or seen[0] < args.count:
            if client.loop(0.5) != mqtt.MQTT_ERR_SUCCESS:
                raise UserError(f"lost connection to broker {host}:{port}")
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
    return 0


def bench(args: argparse.Namespace) -> int:
    """``edgecam bench --source FILE``: the pipeline flat out on a file, its costs printed."""
    from ..bench import _baselines, analyse_file, summarise
    from ..config import CameraConfig, Config
    from ..node.build import analyzer_settings, detector_kwargs
    from ..vision.detector import ModelError, load_detector
    from ..vision.pipeline import CameraAnalyzer

    source = Path(args.source)
    if not source.is_file():
        raise UserError(f"--source {source}: no such file")
    cfg = Config()
    cam = CameraConfig(source=str(source), detect_fps=args.detect_fps)
    try:
        model = Path(args.model) if args.model else (Path("models") if Path("models/manifest.json").exists() else None)
        detector, choice = load_detector(model, cfg.detector.precision, **detector_kwargs(cfg.detector))
    except ModelError as err:
        raise UserError(str(err)) from None
    analyzer = CameraAnalyzer("bench", detector, analyzer_settings(cam, cfg))
    run = analyse_file(source, analyzer, args.detect_fps)
    result = summarise(run, source, f"{choice.path.name} ({choice.precision})")
    if args.baselines:
        result["baselines"] = _baselines(source, detector, args.detect_fps, run.video_s)
    if args.json:
        print(json.dumps(result))
        return 0
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    return 0


def plates_read(args: argparse.Namespace) -> int:
    """Print each file's plates; exit 1 if any file could not be read as an image (the others still print)."""
    import cv2

    from ..vision.plates import PlateReader

    reader = PlateReader(threads=args.threads)  # PlatesUnavailable is a UserError: one line, exit 1
    failed = 0
    for name in args.files:
        img = cv2.imread(name, cv2.IMREAD_COLOR)
        if img is None:
            failed += 1
            if args.json:
                print(json.dumps({"file": name, "plates": [], "error": "not a readable image"}, ensure_ascii=False))
            else:
                print(f"edgecam: {name}: not a readable image", file=sys.stderr)
            continue
        plates = reader.read(img)
        if args.json:
            out = {"file": name, "plates": [{"text": p.text, "score": p.score, "box": list(p.box)} for p in plates]}
            print(json.dumps(out, ensure_ascii=False), flush=True)
        elif not plates:
            print(f"{name}: no readable plate", flush=True)
        else:
            for p in plates:
                x1, y1, x2, y2 = p.box
                print(f"{name}: {p.text}  score {p.score:.2f}  box {x1},{y1},{x2},{y2}", flush=True)
    return 1 if failed else 0
