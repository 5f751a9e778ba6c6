"""mail domain: the invitation outbox, SMTP and its dispatcher."""
