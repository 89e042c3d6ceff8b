"""A ``databricks-sdk`` WorkspaceClient for the tracking URI's workspace.

``databricks://<profile>`` uses that profile of ~/.databrickscfg; any other URI uses the SDK's
default resolution (``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN`` and friends, then the DEFAULT
profile). Credentials are never put in messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlproj.backends.databricks.backend_config import import_sdk, profile_of
from mlproj.errors import ExecutionException

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient


def workspace_client(tracking_uri: str) -> WorkspaceClient:
    import_sdk()
    from databricks.sdk import WorkspaceClient

    profile = profile_of(tracking_uri)
    try:
        return WorkspaceClient(profile=profile) if profile else WorkspaceClient()
    except ValueError as exc:  # the SDK's config errors
        where = f"profile {profile!r} of ~/.databrickscfg" if profile else "the environment"
        raise ExecutionException(
            f"Could not configure the Databricks workspace client from {where}: set "
            "DATABRICKS_HOST and DATABRICKS_TOKEN, or use a tracking URI databricks://<profile> "
            f"naming a configured profile ({type(exc).__name__})"
        ) from exc
