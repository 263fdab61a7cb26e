"""The Flask faces of the masking rules: the API, health, the CLI (and later the dashboard)."""
