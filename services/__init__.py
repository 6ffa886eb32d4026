"""airgrid services: registry, telemetry and dispatch, each a FastAPI app with its stream workers."""
