"""Supervisors' live sockets: the call wall's and a call page's, on one base."""

from dashboard.consumers.call import CallPageConsumer
from dashboard.consumers.wall import WallConsumer

__all__ = ["CallPageConsumer", "WallConsumer"]
