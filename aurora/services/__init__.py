"""Domain services: the rules. They call storage through Storage and push through the notifier."""
