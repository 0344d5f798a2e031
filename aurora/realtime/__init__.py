"""Socket.IO transport: namespaces, the notifier, room names."""
