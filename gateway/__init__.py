"""deskgate: a remote-desktop gateway (VNC over WebSocket) with server-side recording."""

__version__ = "0.1.0"
