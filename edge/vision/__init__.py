"""edgecam vision stage."""
