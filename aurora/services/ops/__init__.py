"""Operations: Prometheus metrics, the delivery journal and trace, moderation."""
