"""The node wing: composition (build), supervision (daemon), the camera loops and the status report."""
