"""A fleet of replicas acting as one: the shared Redis, the quota poller's lease, shared pacing (issue #18).

Pure settings here; the Redis client (the `fleet` extra) is imported only by what talks to Redis.
"""

from monitor.fleet.settings import FLEET_KEYS, FleetSettings, fleet_settings_from_mapping

__all__ = ["FLEET_KEYS", "FleetSettings", "fleet_settings_from_mapping"]
