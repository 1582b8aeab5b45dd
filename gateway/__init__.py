"""deskgate: a remote-desktop gateway (VNC over WebSocket) with server-side recording."""

from base import __version__

__all__ = ["__version__"]
