"""Protocol gateways: MAVLink drones and DJI-Cloud-style MQTT nests into the air grid."""
