"""Google credentials for the quota poller: a service-account key file, else Application Default Credentials."""

from __future__ import annotations

from os import PathLike
from typing import Any, NamedTuple

import google.auth
import google.auth.credentials
import google.auth.exceptions
from google.cloud.monitoring_v3 import MetricServiceClient
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport
from google.oauth2 import service_account

SCOPES = ("https://www.googleapis.com/auth/monitoring.read",)
_HINT = "set GOOGLE_APPLICATION_CREDENTIALS, run `gcloud auth application-default login`, or configure a key file"


class CredentialsStatus(NamedTuple):
    available: bool
    message: str


def credentials_status(key_file: str | PathLike[str] | None = None) -> CredentialsStatus:
    """Whether Google credentials can be found: a service-account key file, else Application Default Credentials.

    Off Google Cloud, google-auth probes the metadata server (up to ~9 s) unless NO_GCE_CHECK=true (lowercase:
    google-auth compares the exact string, and reads it once, at import).
    """
    try:
        if key_file is not None:
            creds = _from_key_file(key_file)
            return CredentialsStatus(True, f"service account {creds.service_account_email} (key file {key_file})")
        found, project = google.auth.default(scopes=SCOPES)
        where = f", project {project}" if project else ""
        return CredentialsStatus(True, f"Application Default Credentials ({type(found).__name__}{where})")
    except (google.auth.exceptions.GoogleAuthError, OSError, ValueError, KeyError) as exc:
        detail = " ".join(str(exc).split()).split(". ")[0].rstrip(".") or type(exc).__name__
        source = f"key file {key_file}: " if key_file is not None else ""
        return CredentialsStatus(False, f"no Google credentials ({source}{detail}); {_HINT}")


def make_client(
    credentials: google.auth.credentials.Credentials | None = None,
    key_file: str | PathLike[str] | None = None,
    channel: Any = None,
) -> MetricServiceClient:
    """The gRPC MetricServiceClient: on `channel` (a grpc.Channel, e.g. insecure to a fake; credentials are then
    ignored), with the key file's service account, with `credentials`, or with ADC."""
    if channel is not None:
        return MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
    if key_file is not None:
        credentials = _from_key_file(key_file)
    return MetricServiceClient(credentials=credentials)


def _from_key_file(key_file: str | PathLike[str]) -> service_account.Credentials:
    load: Any = service_account.Credentials.from_service_account_file  # untyped in google-auth
    credentials: service_account.Credentials = load(str(key_file), scopes=SCOPES)
    return credentials
