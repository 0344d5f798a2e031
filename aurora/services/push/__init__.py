"""Web Push notifications (issue 15): VAPID keys, subscriptions, mutes, and the bounded sender."""

from aurora.services.push.mutes import Mutes
from aurora.services.push.service import Push

__all__ = ["Mutes", "Push"]
