"""Lives in the layer: functions import it as they would from /opt/python."""

MARKER = "from-layer"
