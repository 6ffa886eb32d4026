"""Registry REST API: thin routers over the registry use cases (service.py, credentials.py).

Reads: admin and operator see everything, a department sees its own department record and the
fleet, a gateway sees only its own nest and that nest's drones. Writes: admin only, with
If-Match. Every write is audited and published on airgrid.registry.changes.

Every resource is served under /v1, and no path or query may carry a NUL character.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.registry import api_audit, api_credentials, api_entities
from services.registry.api_deps import refuse_nul

router = APIRouter(prefix="/v1", tags=["registry"], dependencies=[Depends(refuse_nul)])
for resource in (api_entities, api_credentials, api_audit):
    router.include_router(resource.router)
