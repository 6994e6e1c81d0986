"""Grafana for operations: provisioning files (grafana/provisioning/) and the generator of the
dashboards (`python -m grafana.dashboards`)."""
