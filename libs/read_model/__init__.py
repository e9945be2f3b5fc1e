"""The Redis read model's schema: its key and channel names, each module those of one writer,
shared with the reader (the gateway). ``keys``: the projector's (orders, books, trades, fills,
pub/sub channels); ``wallet``: the wallet's (accounts, leverage); ``positions``: the position
engine's (positions, marks, funding). No key matches two writers' patterns
(``tests/unit/test_read_model_owners.py``)."""
