"""BELLE gateway: the HTTP face of the platform."""
