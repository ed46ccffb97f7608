"""Notifications: Slack, PagerDuty and generic webhooks, through a persisted outbox that never blocks evaluation."""

from typing import TYPE_CHECKING

from monitor import _lazy

__all__ = [
    "EVENTS_URL",
    "ChannelConfig",
    "Delivery",
    "Dispatcher",
    "Entry",
    "Event",
    "Notification",
    "Notifier",
    "NotifyConfig",
    "Outbox",
    "OutboxError",
    "PagerDutyNotifier",
    "Result",
    "Route",
    "SlackNotifier",
    "WebhookNotifier",
    "notify_config_from_mapping",
]

_EXPORTS = {
    "EVENTS_URL": "monitor.notify.pagerduty",
    "ChannelConfig": "monitor.notify.config",
    "Delivery": "monitor.notify.base",
    "Dispatcher": "monitor.notify.dispatcher",
    "Entry": "monitor.notify.outbox",
    "Event": "monitor.notify.base",
    "Notification": "monitor.notify.base",
    "Notifier": "monitor.notify.base",
    "NotifyConfig": "monitor.notify.config",
    "Outbox": "monitor.notify.outbox",
    "OutboxError": "monitor.notify.outbox",
    "PagerDutyNotifier": "monitor.notify.pagerduty",
    "Result": "monitor.notify.base",
    "Route": "monitor.notify.config",
    "SlackNotifier": "monitor.notify.slack",
    "WebhookNotifier": "monitor.notify.webhook",
    "notify_config_from_mapping": "monitor.notify.config",
}
__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from monitor.notify.base import Delivery, Event, Notification, Notifier, Result
    from monitor.notify.config import ChannelConfig, NotifyConfig, Route, notify_config_from_mapping
    from monitor.notify.dispatcher import Dispatcher
    from monitor.notify.outbox import Entry, Outbox, OutboxError
    from monitor.notify.pagerduty import EVENTS_URL, PagerDutyNotifier
    from monitor.notify.slack import SlackNotifier
    from monitor.notify.webhook import WebhookNotifier
