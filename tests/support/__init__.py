"""Real test fixtures: a mosquitto broker, an RTSP server, shared assets."""
