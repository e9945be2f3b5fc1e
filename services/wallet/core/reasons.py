"""Reject codes of the wallet's pre-trade check, modelled on Binance USDⓈ-M error codes."""

INVALID_SYMBOL = -1121  # unknown symbol
MANDATORY_PARAM = -1102  # a limit order without its price
INVALID_PARAM = -1130  # non-positive quantity, price or amount
NEW_ORDER_REJECTED = -2010  # order id already open; market order with no reference price
MARGIN_INSUFFICIENT = -2019  # the order's hold exceeds the available balance
INVALID_LEVERAGE = -4028  # leverage outside 1..the symbol's maximum
MAX_POSITION_AT_LEVERAGE = -2027  # the open position exceeds the bracket of that leverage
BALANCE_INSUFFICIENT = -4050  # withdrawal above what positions and orders leave free
DUPLICATE_CLIENT_ORDER_ID = -4015  # the user's client order id is taken: the msg names the order
BALANCE_LIMIT = -4095  # a deposit past the balance or exchange bound (libs.money; not Binance's)

MESSAGES = {
    INVALID_SYMBOL: "Invalid symbol.",
    MANDATORY_PARAM: "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
    INVALID_PARAM: "A parameter was not valid.",
    NEW_ORDER_REJECTED: "New order rejected.",
    MARGIN_INSUFFICIENT: "Margin is insufficient.",
    INVALID_LEVERAGE: "Leverage is not valid.",
    MAX_POSITION_AT_LEVERAGE: "Exceeded the maximum allowable position at current leverage.",
    BALANCE_INSUFFICIENT: "Balance is insufficient.",
    BALANCE_LIMIT: "Deposit refused: it would pass a balance limit.",
}
INVALID_ORDER_TYPE = -1116  # a liquidation order sent as a request
MESSAGES[INVALID_ORDER_TYPE] = "Invalid orderType."
