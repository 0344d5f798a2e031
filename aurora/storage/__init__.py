"""Peewee models and blocking storage functions; nothing here knows about aiohttp or Socket.IO."""
