"""Notifications: Slack, PagerDuty and generic webhooks, through a persisted outbox that never blocks evaluation."""

from monitor.notify.base import Delivery, Event, Notification, Notifier, Result
from monitor.notify.config import ChannelConfig, NotifyConfig, Route, notify_config_from_mapping
from monitor.notify.dispatcher import Dispatcher
from monitor.notify.outbox import Entry, Outbox, OutboxError
from monitor.notify.pagerduty import EVENTS_URL, PagerDutyNotifier
from monitor.notify.slack import SlackNotifier
from monitor.notify.webhook import WebhookNotifier

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
