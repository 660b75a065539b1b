"""Code shared by the grizzly-partner services. Imported, never run (except `python -m grizzly_common.ready`)."""
