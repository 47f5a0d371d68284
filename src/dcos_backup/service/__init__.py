"""The backup service: HTTP API (routes, auth) and the job runner (one operation at a time)."""
