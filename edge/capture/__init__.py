"""edgecam capture stage."""
