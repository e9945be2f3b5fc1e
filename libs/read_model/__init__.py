"""The Redis read model's schema: its key and channel names, shared by its writer (the
projector) and its reader (the gateway)."""
