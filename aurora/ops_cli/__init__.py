"""Operator commands of app.py that talk to a running server: trace, doctor."""
