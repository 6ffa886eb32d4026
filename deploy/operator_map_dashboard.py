"""The live map dashboard: drones, open incidents, nests, coverage holes and overdue inspection
cells as markers on a geomap, read from the operator map views (migrations 0007, 0009, 0013)
in PostgreSQL as the read-only `airgrid_grafana` role."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import geomap
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import geomap as geomap_models

from deploy.map_queries import LAYERS, POSTGRES, Layer, SqlTarget
from deploy.panels import GREEN, Target, dashboard_json, thresholds_config

# Marker colours by the value of the layer's colour field (Grafana value mappings).
COLOURS = {
    "status": {
        "docked": "green",
        "airborne": "blue",
        "on_mission": "orange",
        "link_lost": "red",
        "no_position": "purple",
        "out_of_service": "text",
    },
    "priority": {"1": "red", "2": "orange", "3": "yellow", "4": "blue"},
    "state": {
        "online": "green",
        "weather_hold": "orange",
        "offline": "red",
        "maintenance": "text",
    },
    "coverage": {"hole": "red"},
    "overdue": {"late": "yellow", "very_late": "red", "never_seen": "purple"},
}


def _colour_mapping(field: str) -> list[dashboard_models.DynamicConfigValue]:
    options = {
        value: {"color": colour, "index": i, "text": value}
        for i, (value, colour) in enumerate(COLOURS[field].items())
    }
    return [
        dashboard_models.DynamicConfigValue(
            id_val="mappings", value=[{"type": "value", "options": options}]
        ),
        dashboard_models.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
    ]


def _markers(layer: Layer) -> common_builders.MapLayerOptions:
    return (
        common_builders.MapLayerOptions()
        .type("markers")
        .name(layer.name)
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": layer.colour_by, "fixed": "dark-green"},
                    "opacity": layer.opacity,
                    "size": {"fixed": 6, "min": 4, "max": 12},
                    "symbol": {"mode": "fixed", "fixed": f"img/icons/marker/{layer.symbol}.svg"},
                    "text": (
                        {"mode": "field", "field": layer.label, "fixed": ""}
                        if layer.label
                        else {"mode": "fixed", "fixed": ""}
                    ),
                    "textConfig": {"fontSize": 10, "offsetY": -12, "textAlign": "center"},
                },
            }
        )
        .location(
            common_builders.FrameGeometrySource()
            .mode(common_models.FrameGeometrySourceMode.COORDS)
            .latitude("latitude")
            .longitude("longitude")
        )
        .filter_data({"id": "byRefId", "options": layer.ref_id})
        .tooltip(True)
    )


def operator_map() -> dict[str, Any]:
    sql_targets: list[Target] = [SqlTarget(layer.ref_id, layer.sql) for layer in LAYERS]
    panel = (
        geomap.Panel()
        .title("Live map")
        .description(
            "Drones by status (last fix in the time range), open incidents by priority with "
            "their stage, nests with weather holds, the coverage holes: cells no available "
            "drone reaches within the 300 s SLA now, and the most overdue inspection cells "
            "of each active plan (yellow: late, red: an interval or more past the deadline, "
            "purple: never seen). Read from the operator map views."
        )
        .datasource(POSTGRES)
        .unit("none")
        .span(24)
        .height(20)
        .thresholds(thresholds_config((GREEN,)))
        .targets(sql_targets)
        .view(geomap.MapViewConfig().id("fit").all_layers(True).padding(5))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_scale(True))
        .basemap(common_builders.MapLayerOptions().type("default").name("Basemap"))
        .layers([_markers(layer) for layer in LAYERS])
        .tooltip(geomap.TooltipOptions().mode(geomap_models.TooltipMode.DETAILS))
    )
    for field in COLOURS:
        panel.override_by_name(field, _colour_mapping(field))
    return dashboard_json(
        "airgrid-operator-map",
        "airgrid — live map",
        "Where the drones, open incidents, held nests, coverage holes and overdue inspection "
        "cells are now (PostgreSQL, read-only role).",
        [panel],
        refresh="10s",
        time_from="now-15m",
    )
