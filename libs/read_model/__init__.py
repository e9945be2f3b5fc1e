"""The Redis read model's schema, shared by its one writer (the projector) and its reader (the
gateway): ``keys``, every key and channel name with the hashes' fields; ``positions``, a
position's facts as stored and the view the gateway computes from them. The only other keys
in Redis are the gateway's rate limits (``tests/unit/test_read_model_owners.py``)."""
