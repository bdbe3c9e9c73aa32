"""Dashboards: the Dash app with deploy and flag markers."""
