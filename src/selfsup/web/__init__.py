"""The selfsup web app: runs, reports, thumbnails and embedding maps in the browser.

Served by ``selfsup serve`` next to the HTTP API (same origin, logged in with an API token),
and by ``selfsup view ./out`` over the output folders of local runs, without a database.
Nothing here imports torch: the server process never loads it.
"""
