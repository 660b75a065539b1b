"""A stand-in for the platform (grizzly-sim) and the protocol conformance kit (grizzly-conformance)."""
