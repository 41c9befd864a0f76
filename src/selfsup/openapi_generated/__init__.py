"""The wire types of the selfsup server API, at the import paths lightly users know.

lightly's client ships code generated from its OpenAPI spec under
``lightly.openapi_generated.swagger_client``. selfsup goes the other way: these hand-written
pydantic models *are* the API's request and response bodies; ``selfsup serve`` publishes the
OpenAPI schema generated from them at ``/openapi.json`` and :class:`selfsup.api.ApiWorkflowClient`
parses responses with them. The modules keep lightly's names so that, e.g.,
``from selfsup.openapi_generated.swagger_client.models.dataset_type import DatasetType`` works.
"""
