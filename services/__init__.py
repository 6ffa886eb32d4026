"""airgrid services: registry, telemetry and dispatch, each an app with its stream workers."""
