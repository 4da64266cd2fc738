"""edgecam api stage."""
