"""The Binance USDⓈ-M face of the gateway: Binance's paths, parameters, names and errors,
beside the original API, so a bot written for Binance futures (ccxt's ``binanceusdm``,
freqtrade, hummingbot) trades here with only its base URL changed. docs/BINANCE-API.md lists
what is served and what each Binance field means here.

- ``names``: Binance's symbol names (``BTCUSDT``) for the listed contracts (``BTC-PERP``).
- ``signed``: who is calling, Binance's way (``X-MBX-APIKEY``, the HMAC of the raw query and
  body), and the request's parameters, from wherever Binance lets them travel.
- ``market``: the public endpoints; ``orders``, ``algo`` (conditional orders, Binance's algo
  service) and ``account``: the signed ones.
"""
