"""Browser tests of the dashboard."""
