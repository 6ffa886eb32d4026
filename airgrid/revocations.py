"""A revoked credential stops working at once in every replica of every service, not when the
authenticator's cache expires: each service follows `credential_revoked` changes on the
registry topic and drops the key from its cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airgrid.auth import Authenticator
from airgrid.bus import TopicView
from airgrid.config import Settings
from airgrid.topics import REGISTRY_CHANGES
from airgrid.v1 import registry_pb2


def on_revocation(
    authenticator: Authenticator, *also: Callable[[str], None]
) -> Callable[[str, Any], None]:
    """A registry-change callback: forget a revoked credential, then tell `also` its id."""

    def on_change(_key: str, change: Any) -> None:
        if change is not None and change.HasField("credential_revoked"):
            credential_id = change.credential_revoked.credential_id
            authenticator.forget(credential_id)
            for hook in also:
                hook(credential_id)

    return on_change


def revocation_view(settings: Settings, authenticator: Authenticator) -> TopicView:
    """The registry topic read only for revocations (services that keep no registry view)."""
    return TopicView(
        settings,
        REGISTRY_CHANGES,
        registry_pb2.RegistryChange.FromString,
        on_update=on_revocation(authenticator),
    )
