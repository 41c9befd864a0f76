"""HTTP routes, one module per resource; every route but ``/health`` needs an API token."""
