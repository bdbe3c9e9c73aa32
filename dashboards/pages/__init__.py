"""Pages of the dashboards app, each registering itself and its callbacks on an app."""
