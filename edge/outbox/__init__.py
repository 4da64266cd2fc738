"""edgecam outbox stage."""
