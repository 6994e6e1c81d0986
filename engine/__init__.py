"""Maintenance logic: rule evaluation, alerts, work orders, counters, statuses, the scheduler."""
