"""Supervisors' live sockets: the call wall's, a call page's and listening in, on one base."""

from dashboard.consumers.call import CallPageConsumer
from dashboard.consumers.listen import ListenConsumer
from dashboard.consumers.wall import WallConsumer

__all__ = ["CallPageConsumer", "ListenConsumer", "WallConsumer"]
