"""The ``selfsup`` command line: train, embed and (later) run, serve and work."""
