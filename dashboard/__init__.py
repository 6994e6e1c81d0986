"""Shared parts of the Streamlit dashboard: words (i18n), cached readers and actions, widgets."""
