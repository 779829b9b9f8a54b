"""The region API in process over a real redis-server (`tier0_fixtures.api`), and a RegionPair
with an operator stand-in (`tier0_fixtures.standin`) for the OpenAPI run against both regions."""

from tier0_fixtures.api import api_factory, client, redis  # noqa: F401
from tier0_fixtures.standin import kube_client, namespace, operator, regionpair  # noqa: F401
