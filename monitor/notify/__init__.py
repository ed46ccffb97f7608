"""Notifications: Slack, PagerDuty and generic webhooks, through a persisted outbox that never blocks evaluation."""
