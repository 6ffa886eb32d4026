"""The registry's pure rules: GeoJSON geometry checks and what lies inside the zone."""
