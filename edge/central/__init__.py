"""edgecam central stage."""
