"""edgecam clips stage."""
