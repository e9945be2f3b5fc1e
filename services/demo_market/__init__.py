"""The demo market: a market maker and a few takers that trade on the exchange by themselves,
as any outside bot would, through the gateway's public HTTP API with API keys.

``core`` decides (quote ladders, taker orders, position limits, the request budget) and does
no I/O; ``client`` speaks HTTP to the gateway; ``bots`` runs the bots' loops; ``__main__`` wires
them together.
"""
