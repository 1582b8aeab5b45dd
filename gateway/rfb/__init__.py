"""Sans-I/O RFB (RFC 6143) for the gateway: bytes in, events out.

Nothing in this package imports asyncio, sockets or any network library.
"""
