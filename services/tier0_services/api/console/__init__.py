"""The web console: a page served by the region API itself, and the endpoints it polls.

`install(app)` adds the page (`/console`), its static files (`/console/static/`, written for
tier0, no third-party code) and the JSON endpoints under `/api/console/`.
"""
