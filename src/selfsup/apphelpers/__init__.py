"""What selfsup's two HTTP apps share, below both: the server's API (``selfsup serve``) and
the web app (``selfsup view`` and the pages of ``selfsup serve``).

* :mod:`~selfsup.apphelpers.http_errors`: the JSON error body and its handlers;
* :mod:`~selfsup.apphelpers.paths`: LOCAL folders inside the allowed roots, safe file names;
* :mod:`~selfsup.apphelpers.limits`: request sizes checked before a body is read;
* :mod:`~selfsup.apphelpers.access_log`: access logs without ``token=`` values;
* :mod:`~selfsup.apphelpers.network`: the loopback check behind the clear-text warning;
* :mod:`~selfsup.apphelpers.web_backend`: the records the web pages show, and how a backend
  (the server's database, or local run folders) hands them over.

The server and the web app never import each other (``tests/test_layers.py``); shared code
lives here, and ``selfsup.cli`` puts the two together. Nothing here imports torch.
"""
