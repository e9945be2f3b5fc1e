// The trading page: the original API (docs/API.md) over fetch and the /ws WebSocket.
// State lives in plain objects; the DOM is redrawn at most once per animation frame, and only
// the parts marked dirty, so thousands of depth updates a minute cost a few renders a second.

const LADDER_ROWS = 15; // price levels shown per side
const TAPE_ROWS = 40;
const HISTORY_ROWS = 50;
const SNAPSHOT_LEVELS = 1000; // depth asked of GET /orderbook on a resync
const STATUS_EVERY_MS = 3000;
const ACCOUNT_EVERY_MS = 3000;
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];
const INTERVAL_SECONDS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400 };

const $ = (id) => document.getElementById(id);

const state = {
  symbols: [],
  symbol: null,
  session: JSON.parse(sessionStorage.getItem("session") || "null"), // {token, user_id, email}
  book: { bids: new Map(), asks: new Map(), updateId: null, syncing: false, buffer: [], resyncs: 0, generation: 0 },
  trades: [],
  mark: {},
  funding: { rate: null, next: 0 },
  account: null,
  positions: [],
  openOrders: [],
  history: [],
  fills: [],
  status: null,
  frames: 0, // animation frames that redrew something
  ws: { socket: null, attempt: 0, reconnects: 0, opened: false, state: "connecting", channels: [] },
  chart: { api: null, series: null, interval: "1m", last: null, count: 0 },
};

// --- rendering, coalesced -----------------------------------------------------------------

const dirty = new Set();
let frame = 0;

function mark(...parts) {
  for (const part of parts) dirty.add(part);
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  state.frames += 1;
  const parts = [...dirty];
  dirty.clear();
  for (const part of parts) renderers[part]();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const cell = (value) => el("td", { text: value ?? "–" });
const num = (text) => Number(text);
const clock = (ms) => new Date(Number(ms)).toLocaleTimeString([], { hour12: false });

function ladderSide(levels, side) {
  const prices = [...levels.keys()].sort((a, b) => (side === "bids" ? num(b) - num(a) : num(a) - num(b)));
  const shown = prices.slice(0, LADDER_ROWS);
  let total = 0;
  const rows = shown.map((price) => {
    const qty = levels.get(price);
    total += num(qty);
    return { price, qty, total };
  });
  return rows;
}

const renderers = {
  book() {
    const bids = ladderSide(state.book.bids, "bids");
    const asks = ladderSide(state.book.asks, "asks");
    const deepest = Math.max(bids.at(-1)?.total || 0, asks.at(-1)?.total || 0) || 1;
    const row = (level, side) => {
      const node = el(
        "div",
        { class: "level", "data-testid": `book-${side}-row`, "data-price": level.price, "data-qty": level.qty },
        el("span", { class: "price", text: level.price }),
        el("span", { text: level.qty }),
        el("span", { class: "muted", text: level.total.toFixed(3) }),
      );
      node.style.setProperty("--depth", `${(100 * level.total) / deepest}%`);
      return node;
    };
    $("book-asks").replaceChildren(...asks.map((l) => row(l, "ask")).reverse());
    $("book-bids").replaceChildren(...bids.map((l) => row(l, "bid")));
    const spread = bids.length && asks.length ? (num(asks[0].price) - num(bids[0].price)).toPrecision(6) : "–";
    $("book-spread").textContent = `spread ${spread}`;
    $("book-update-id").textContent = state.book.updateId ?? "–";
    $("book-resyncs").textContent = state.book.resyncs;
  },
  trades() {
    $("trades").replaceChildren(
      ...state.trades.map((t) =>
        el(
          "div",
          { class: `level ${t.taker_side === "Buy" ? "up" : "down"}`, "data-testid": "trade-row", "data-trade-id": t.trade_id },
          el("span", { class: "price", text: t.price }),
          el("span", { text: t.quantity }),
          el("span", { class: "muted", text: clock(t.time) }),
        ),
      ),
    );
    $("last-price").textContent = state.trades[0]?.price ?? "–";
  },
  ticker() {
    $("mark-price").textContent = state.mark.mark_price ?? "–";
    $("index-price").textContent = state.mark.index_price ?? "–";
    $("funding-rate").textContent = state.funding.rate === null ? "–" : `${(num(state.funding.rate) * 100).toFixed(4)}%`;
  },
  ws() {
    const status = $("ws-status");
    status.textContent = state.ws.state;
    status.dataset.state = state.ws.state;
    $("ws-reconnects").textContent = state.ws.reconnects;
  },
  session() {
    const session = state.session;
    $("user-label").textContent = session ? `${session.email} · #${session.user_id}` : "signed out";
    $("auth-form").hidden = Boolean(session);
    $("account").hidden = !session;
    $("signout").hidden = !session;
  },
  account() {
    const a = state.account || {};
    for (const [id, key] of [
      ["balance", "balance"],
      ["available", "available"],
      ["holds", "holds"],
      ["position-margin", "position_margin"],
      ["account-upnl", "unrealised_pnl"],
    ]) {
      $(id).textContent = a[key] ?? "–";
    }
  },
  positions() {
    $("positions-body").replaceChildren(
      ...state.positions.map((p) =>
        el(
          "tr",
          { "data-testid": "position-row", "data-symbol": p.symbol, "data-size": p.size },
          cell(p.symbol),
          el("td", { class: num(p.size) < 0 ? "down" : "up", text: p.size }),
          cell(p.entry_price),
          cell(p.mark_price),
          el("td", { "data-testid": "position-upnl", class: num(p.unrealised_pnl) < 0 ? "down" : "up", text: p.unrealised_pnl }),
          el("td", { "data-testid": "position-liq", text: p.liquidation_price ?? "–" }),
          cell(p.margin_ratio),
        ),
      ),
    );
  },
  openOrders() {
    $("open-orders-body").replaceChildren(
      ...state.openOrders.map((o) =>
        el(
          "tr",
          { "data-testid": "open-order-row", "data-order-id": o.order_id, "data-type": o.order_type },
          cell(o.order_id),
          cell(o.symbol),
          el("td", { class: o.side === "Buy" ? "up" : "down", text: o.side }),
          cell(o.order_type),
          cell(o.price),
          cell(o.stop_price),
          cell(o.quantity),
          cell(o.filled),
          cell(o.time_in_force),
          cell(o.status),
          el(
            "td",
            { class: "actions" },
            el("button", { type: "button", "data-testid": `amend-${o.order_id}`, text: "Amend", onclick: () => openAmend(o) }),
            el("button", { type: "button", "data-testid": `cancel-${o.order_id}`, text: "Cancel", onclick: () => cancelOrder(o.order_id) }),
          ),
        ),
      ),
    );
  },
  history() {
    $("order-history-body").replaceChildren(
      ...state.history.map((o) =>
        el(
          "tr",
          { "data-testid": "history-row", "data-order-id": o.order_id, "data-status": o.status },
          cell(o.order_id),
          cell(o.symbol),
          cell(o.side),
          cell(o.order_type),
          cell(o.price),
          cell(o.quantity),
          cell(o.filled),
          cell(o.status),
          cell(o.reason || (o.code ? `${o.code} ${o.msg}` : null)),
        ),
      ),
    );
  },
  fills() {
    $("fills-body").replaceChildren(
      ...state.fills.map((f) =>
        el(
          "tr",
          { "data-testid": "fill-row", "data-order-id": f.order_id, "data-trade-id": f.trade_id },
          cell(f.trade_id),
          cell(f.order_id),
          cell(f.symbol),
          cell(f.side),
          cell(f.price),
          cell(f.quantity),
          cell(f.fee),
          cell(f.maker ? "maker" : "taker"),
          cell(clock(f.time)),
        ),
      ),
    );
  },
  status() {
    const body = $("status-table").tBodies[0];
    if (state.status === null) {
      body.replaceChildren(el("tr", {}, el("td", { "data-testid": "status-unavailable", colspan: "2", text: "status unavailable" })));
      return;
    }
    body.replaceChildren(
      ...flatten(state.status).map(([key, value]) =>
        el("tr", { "data-testid": "status-row", "data-key": key }, el("th", { text: key }), el("td", { text: value })),
      ),
    );
  },
  chartCount() {
    $("chart-candles").textContent = state.chart.count;
  },
};

function flatten(value, prefix = "") {
  if (value === null || typeof value !== "object") return [[prefix || "value", String(value)]];
  const rows = [];
  for (const [key, inner] of Object.entries(value)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (inner !== null && typeof inner === "object" && !Array.isArray(inner)) rows.push(...flatten(inner, name));
    else rows.push([name, Array.isArray(inner) ? JSON.stringify(inner) : String(inner)]);
  }
  return rows;
}

// --- REST ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, msg) {
    super(`${code} ${msg}`);
    Object.assign(this, { status, code, msg });
  }
}

// Order ids pass 2**53: JSON.parse would round them to the nearest double (another order's
// id). Integers of 16 digits and more are read as strings, and order ids sent as numbers.
const LONG_INTEGER = /([:,[]\s*)(-?\d{16,})(?=\s*[,\]}])/g;
const parseJson = (text) => JSON.parse(text.replace(LONG_INTEGER, '$1"$2"'));
const toJson = (body) => JSON.stringify(body).replace(/"order_id":"(\d+)"/g, '"order_id":$1');

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.session) headers.Authorization = `Bearer ${state.session.token}`;
  const reply = await fetch(path, { method, headers, body: body === undefined ? undefined : toJson(body) });
  const data = await reply.text().then(parseJson).catch(() => null);
  if (!reply.ok) {
    const code = data?.code ?? reply.status;
    const msg = data?.msg ?? data?.detail ?? reply.statusText;
    if (reply.status === 401 && state.session) signOut();
    throw new ApiError(reply.status, code, typeof msg === "string" ? msg : JSON.stringify(msg));
  }
  return data;
}

function showError(error, what) {
  const text = error instanceof ApiError ? `${what}: ${error.code} ${error.msg}` : `${what}: ${error.message || error}`;
  $("error-text").textContent = text;
  $("error-banner").hidden = false;
}

function clearError() {
  $("error-banner").hidden = true;
}

// --- market data --------------------------------------------------------------------------

function resetBook() {
  const generation = state.book.generation + 1; // ends a resync under way
  Object.assign(state.book, { bids: new Map(), asks: new Map(), updateId: null, syncing: false, buffer: [], generation });
}

function setLevels(levels, rows) {
  for (const [price, qty] of rows) {
    if (num(qty) === 0) levels.delete(price);
    else levels.set(price, qty);
  }
}

function loadSnapshot(snapshot) {
  state.book.bids = new Map();
  state.book.asks = new Map();
  setLevels(state.book.bids, snapshot.bids);
  setLevels(state.book.asks, snapshot.asks);
  state.book.updateId = snapshot.update_id;
  state.book.resyncs += 1;
  mark("book");
}

function applyUpdate(update) {
  setLevels(state.book.bids, update.bids);
  setLevels(state.book.asks, update.asks);
  state.book.updateId = update.update_id;
}

function onDepthUpdate(update) {
  const book = state.book;
  if (book.syncing) {
    book.buffer.push(update);
    return;
  }
  if (book.updateId === null) return; // no snapshot yet: the WS snapshot comes first
  if (update.update_id <= book.updateId) return; // already in the book
  if (update.first_update_id !== book.updateId + 1) {
    console.warn(`depth gap: had ${book.updateId}, got ${update.first_update_id}; resyncing`);
    resyncDepth([update]);
    return;
  }
  applyUpdate(update);
  mark("book");
}

// A lost message: fetch the REST snapshot while buffering the stream, then apply the buffered
// updates that come after it. If the buffer does not join the snapshot, try again.
async function resyncDepth(buffered = []) {
  const book = state.book;
  if (book.syncing) return;
  const symbol = state.symbol;
  const generation = book.generation;
  book.syncing = true;
  book.buffer = buffered;
  for (let attempt = 0; generation === book.generation; attempt += 1) {
    try {
      const snapshot = await api("GET", `/orderbook/${symbol}?limit=${SNAPSHOT_LEVELS}`);
      if (generation !== book.generation) return;
      const pending = book.buffer.filter((u) => u.update_id > snapshot.update_id);
      if (pending.length && pending[0].first_update_id > snapshot.update_id + 1) {
        throw new Error("snapshot older than the stream");
      }
      book.syncing = false;
      book.buffer = [];
      loadSnapshot(snapshot);
      for (const update of pending) onDepthUpdate(update);
      return;
    } catch (error) {
      await sleep(BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]);
    }
  }
}

function onTrade(trade) {
  state.trades.unshift(trade);
  if (state.trades.length > TAPE_ROWS) state.trades.length = TAPE_ROWS;
  mark("trades");
  chartTrade(trade);
}

async function loadMarket() {
  const symbol = state.symbol;
  const [trades, markprice, funding] = await Promise.all([
    api("GET", `/trades/${symbol}?limit=${TAPE_ROWS}`),
    api("GET", `/markprice/${symbol}`),
    api("GET", `/funding/${symbol}`),
  ]);
  if (symbol !== state.symbol) return;
  state.trades = trades;
  state.mark = markprice;
  state.funding = { rate: funding.funding_rate, next: funding.next_funding_time, interval: funding.interval_seconds };
  mark("trades", "ticker");
}

async function refreshFunding() {
  try {
    const funding = await api("GET", `/funding/${state.symbol}`);
    state.funding = { rate: funding.funding_rate, next: funding.next_funding_time, interval: funding.interval_seconds };
    mark("ticker");
  } catch {
    /* shown again on the next tick */
  }
}

function tickFunding() {
  // Before the first funding the engine has no time for it yet: its schedule is the epoch
  // grid of the interval (services/positions), so the next one is the next grid line.
  const interval = (state.funding.interval || 0) * 1000;
  const next = state.funding.next || (interval && (Math.floor(Date.now() / interval) + 1) * interval);
  let text = "–";
  if (next) {
    let left = Math.floor((next - Date.now()) / 1000);
    if (left < 0) {
      refreshFunding();
      left = 0;
    }
    const h = String(Math.floor(left / 3600)).padStart(2, "0");
    const m = String(Math.floor((left % 3600) / 60)).padStart(2, "0");
    const s = String(left % 60).padStart(2, "0");
    text = `${h}:${m}:${s}`;
  }
  $("funding-countdown").textContent = text;
}

// --- chart --------------------------------------------------------------------------------

function makeChart() {
  const charts = window.LightweightCharts;
  if (!charts) {
    $("chart").textContent = "chart library missing";
    return;
  }
  const api = charts.createChart($("chart"), {
    autoSize: true,
    layout: { background: { color: "#11151c" }, textColor: "#c9d1d9" },
    grid: { vertLines: { color: "#1c222b" }, horzLines: { color: "#1c222b" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  const series = api.addSeries(charts.CandlestickSeries, {
    upColor: "#2ebd85",
    downColor: "#f6465d",
    borderVisible: false,
    wickUpColor: "#2ebd85",
    wickDownColor: "#f6465d",
  });
  Object.assign(state.chart, { api, series });
}

function precisionOf(symbol) {
  const tick = state.symbols.find((s) => s.symbol === symbol)?.tick_size || "0.01";
  return { type: "price", precision: (tick.split(".")[1] || "").length, minMove: num(tick) };
}

async function loadCandles() {
  const chart = state.chart;
  if (!chart.series) return;
  const symbol = state.symbol;
  const interval = chart.interval;
  const rows = await api("GET", `/klines?symbol=${symbol}&interval=${interval}&limit=500`);
  if (symbol !== state.symbol || interval !== chart.interval) return;
  const bars = rows.map((k) => ({
    time: k.open_time / 1000,
    open: num(k.open),
    high: num(k.high),
    low: num(k.low),
    close: num(k.close),
  }));
  chart.series.applyOptions({ priceFormat: precisionOf(symbol) });
  chart.series.setData(bars);
  chart.last = bars.at(-1) || null;
  chart.count = bars.length;
  mark("chartCount");
}

// A trade moves the candle it falls in (a new one when its interval has begun).
function chartTrade(trade) {
  const chart = state.chart;
  if (!chart.series) return;
  const length = INTERVAL_SECONDS[chart.interval];
  const opened = Math.floor(Number(trade.time) / 1000 / length) * length;
  const price = num(trade.price);
  const last = chart.last;
  if (last && opened < last.time) return; // older than the chart's newest candle
  const bar =
    last && opened === last.time
      ? { ...last, high: Math.max(last.high, price), low: Math.min(last.low, price), close: price }
      : { time: opened, open: price, high: price, low: price, close: price };
  if (!last || opened !== last.time) {
    chart.count += 1;
    mark("chartCount");
  }
  chart.series.update(bar);
  chart.last = bar;
}

// --- the WebSocket ------------------------------------------------------------------------

function channelsFor(symbol) {
  const channels = [`depth:${symbol}`, `trades:${symbol}`, `mark:${symbol}`];
  if (state.session) channels.push("user");
  return channels;
}

function send(message) {
  const socket = state.ws.socket;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function connect() {
  const ws = state.ws;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const socket = new WebSocket(url);
  ws.socket = socket;
  ws.state = ws.attempt ? "reconnecting" : "connecting";
  mark("ws");
  socket.onopen = () => {
    const again = ws.attempt > 0 || ws.opened; // a reconnect: catch up on what was missed
    if (ws.attempt) ws.reconnects += 1;
    ws.attempt = 0;
    ws.opened = true;
    ws.state = "live";
    mark("ws");
    if (state.session) send({ op: "auth", token: state.session.token });
    resetBook(); // the subscription's snapshot rebuilds it
    ws.channels = channelsFor(state.symbol);
    send({ op: "subscribe", channels: ws.channels });
    if (again) catchUp();
  };
  socket.onmessage = (event) => onMessage(parseJson(event.data));
  socket.onclose = () => {
    if (ws.socket !== socket) return; // replaced on purpose
    ws.socket = null;
    ws.state = "reconnecting";
    mark("ws");
    const delay = BACKOFF_MS[Math.min(ws.attempt, BACKOFF_MS.length - 1)];
    ws.attempt += 1;
    setTimeout(connect, delay * (0.75 + Math.random() / 2));
  };
}

// After a reconnect: what the stream missed while away.
function catchUp() {
  loadMarket().catch(() => {});
  loadCandles().catch(() => {});
  refreshUser();
}

function onMessage(message) {
  if (message.error) {
    console.warn("ws error", message.error);
    return;
  }
  const channel = message.channel;
  if (!channel || message.op) return; // acks ("subscribed") and pongs
  if (channel === "user") {
    scheduleUserRefresh();
    return;
  }
  const [stream, symbol] = channel.split(":");
  if (symbol !== state.symbol) return; // a message of a symbol just left
  if (stream === "depth") {
    if (message.type === "snapshot") {
      state.book.syncing = false;
      state.book.buffer = [];
      loadSnapshot(message.data);
    } else onDepthUpdate(message.data);
  } else if (stream === "trades") onTrade(message.data);
  else if (stream === "mark") {
    if (message.type === "mark") state.mark = { ...state.mark, ...message.data };
    else refreshFunding();
    mark("ticker");
  }
}

// --- the user's state ---------------------------------------------------------------------

let userRefresh = 0;

function scheduleUserRefresh() {
  if (!userRefresh) userRefresh = setTimeout(refreshUser, 100);
}

async function refreshUser() {
  userRefresh = 0;
  if (!state.session) return;
  try {
    const [account, positions, open, history, fills] = await Promise.all([
      api("GET", "/account"),
      api("GET", "/positions"),
      api("GET", "/orders?status=open&limit=200"),
      api("GET", `/orders?status=all&limit=${HISTORY_ROWS}`),
      api("GET", `/fills?limit=${HISTORY_ROWS}`),
    ]);
    Object.assign(state, { account, positions, openOrders: open, history, fills });
    mark("account", "positions", "openOrders", "history", "fills");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) console.warn("refresh failed", error);
  }
}

async function refreshAccount() {
  if (!state.session) return;
  try {
    const [account, positions] = await Promise.all([api("GET", "/account"), api("GET", "/positions")]);
    Object.assign(state, { account, positions });
    mark("account", "positions");
  } catch {
    /* the next poll tries again */
  }
}

function startSession(session) {
  state.session = session;
  sessionStorage.setItem("session", JSON.stringify(session));
  mark("session");
  send({ op: "auth", token: session.token });
  send({ op: "subscribe", channels: ["user"] });
  refreshUser();
}

function signOut() {
  state.session = null;
  sessionStorage.removeItem("session");
  Object.assign(state, { account: null, positions: [], openOrders: [], history: [], fills: [] });
  mark("session", "account", "positions", "openOrders", "history", "fills");
  const socket = state.ws.socket;
  state.ws.socket = null;
  if (socket) socket.close(); // a fresh socket, without the user channel
  connect();
}

async function signIn(email, password) {
  const reply = await api("POST", "/signin", { email, password });
  startSession({ token: reply.token, user_id: reply.user_id, email });
}

// --- actions ------------------------------------------------------------------------------

async function cancelOrder(orderId) {
  clearError();
  try {
    const reply = await api("POST", "/cancel", { order_id: orderId });
    $("order-result").textContent = `order ${orderId}: ${reply.status}`;
  } catch (error) {
    showError(error, `Cancel ${orderId}`);
  }
  refreshUser();
}

function openAmend(order) {
  const form = $("amend-form");
  form.dataset.orderId = order.order_id;
  $("amend-id").textContent = order.order_id;
  $("amend-price").value = order.price ?? "";
  $("amend-quantity").value = order.remaining ?? order.quantity;
  form.hidden = false;
}

function orderBody() {
  const type = $("order-type").value;
  const form = $("order-form");
  const body = {
    symbol: state.symbol,
    side: form.querySelector("input[name=side]:checked").value,
    order_type: type,
    quantity: $("order-quantity").value.trim(),
    reduce_only: $("order-reduce-only").checked,
  };
  const leverage = $("order-leverage").value.trim();
  if (leverage) body.leverage = leverage;
  const shown = fieldsFor(type);
  if (shown.price) body.price = $("order-price").value.trim();
  if (shown.stop) {
    body.stop_price = $("order-stop-price").value.trim();
    body.trigger_by = $("order-trigger-by").value;
  }
  if (shown.trailing) {
    body.callback_rate = $("order-callback-rate").value.trim();
    const activation = $("order-activation-price").value.trim();
    if (activation) body.activation_price = activation;
  }
  if (shown.tif) body.time_in_force = $("order-tif").value;
  return body;
}

function fieldsFor(type) {
  const limit = ["Limit", "StopLimit", "TakeProfitLimit"].includes(type);
  return {
    price: limit,
    tif: limit,
    stop: ["StopMarket", "StopLimit", "TakeProfitMarket", "TakeProfitLimit"].includes(type),
    trailing: type === "TrailingStop",
  };
}

function showOrderFields() {
  const shown = fieldsFor($("order-type").value);
  for (const label of document.querySelectorAll("#order-form [data-when]")) {
    label.hidden = !shown[label.dataset.when];
  }
}

function wire() {
  $("symbol-select").addEventListener("change", (event) => switchSymbol(event.target.value));
  $("interval-select").addEventListener("change", (event) => {
    state.chart.interval = event.target.value;
    state.chart.last = null;
    loadCandles().catch((error) => showError(error, "Candles"));
  });
  $("error-close").addEventListener("click", clearError);
  $("signout").addEventListener("click", signOut);
  $("order-type").addEventListener("change", showOrderFields);

  $("auth-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      await signIn($("email").value.trim(), $("password").value);
    } catch (error) {
      showError(error, "Sign in");
    }
  });
  $("signup").addEventListener("click", async () => {
    clearError();
    const email = $("email").value.trim();
    const password = $("password").value;
    try {
      await api("POST", "/signup", { email, password });
      await signIn(email, password);
    } catch (error) {
      showError(error, "Sign up");
    }
  });
  $("deposit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      const reply = await api("POST", "/deposit", { asset: "USDT", amount: $("deposit-amount").value.trim() });
      $("order-result").textContent = `deposit ${reply.amount}: ${reply.status}`;
    } catch (error) {
      showError(error, "Deposit");
    }
    refreshUser();
  });
  $("order-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const result = $("order-result");
    result.textContent = "";
    delete result.dataset.status; // the answer to this order, not the last one's
    delete result.dataset.orderId;
    try {
      const reply = await api("POST", "/place_order", orderBody());
      result.dataset.orderId = reply.order_id;
      result.dataset.status = reply.status;
      result.textContent = `order ${reply.order_id}: ${reply.status}` + (reply.reason ? ` (${reply.reason})` : "");
    } catch (error) {
      result.dataset.status = "Rejected";
      result.textContent = error instanceof ApiError ? `Rejected ${error.code}: ${error.msg}` : String(error);
      showError(error, "Order rejected");
    }
    refreshUser();
  });
  $("amend-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const form = $("amend-form");
    const body = { order_id: form.dataset.orderId };
    const price = $("amend-price").value.trim();
    const quantity = $("amend-quantity").value.trim();
    if (price) body.price = price;
    if (quantity) body.quantity = quantity;
    try {
      const reply = await api("POST", "/amend", body);
      $("order-result").textContent = `order ${reply.order_id}: ${reply.status}`;
      form.hidden = true;
    } catch (error) {
      showError(error, `Amend ${body.order_id}`);
    }
    refreshUser();
  });
  $("amend-cancel").addEventListener("click", () => ($("amend-form").hidden = true));
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tabs button")) other.classList.toggle("on", other === tab);
      for (const pane of document.querySelectorAll("[data-pane]")) pane.hidden = pane.dataset.pane !== tab.dataset.tab;
    });
  }
  showOrderFields();
}

function switchSymbol(symbol) {
  const old = state.ws.channels.filter((c) => c !== "user");
  state.symbol = symbol;
  localStorage.setItem("symbol", symbol);
  resetBook();
  state.trades = [];
  state.mark = {};
  state.chart.last = null;
  mark("book", "trades", "ticker");
  send({ op: "unsubscribe", channels: old });
  state.ws.channels = channelsFor(symbol);
  send({ op: "subscribe", channels: state.ws.channels.filter((c) => c !== "user") });
  loadMarket().catch((error) => showError(error, "Market data"));
  loadCandles().catch((error) => showError(error, "Candles"));
}

async function pollStatus() {
  try {
    const reply = await fetch("/status");
    state.status = reply.ok ? await reply.json() : null;
  } catch {
    state.status = null;
  }
  mark("status");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  wire();
  makeChart();
  mark("session", "ws", "status");
  state.symbols = await api("GET", "/symbols");
  const names = state.symbols.map((s) => s.symbol);
  $("symbol-select").replaceChildren(...names.map((name) => el("option", { value: name, text: name })));
  const remembered = localStorage.getItem("symbol");
  state.symbol = names.includes(remembered) ? remembered : names[0];
  $("symbol-select").value = state.symbol;
  connect();
  loadMarket().catch((error) => showError(error, "Market data"));
  loadCandles().catch((error) => showError(error, "Candles"));
  refreshUser();
  pollStatus();
  setInterval(pollStatus, STATUS_EVERY_MS);
  setInterval(refreshAccount, ACCOUNT_EVERY_MS);
  setInterval(tickFunding, 1000);
  setInterval(() => send({ op: "ping" }), 20000);
}

// For the browser tests and for debugging in the console.
window.tradingPage = { state, onMessage, resyncDepth };

main().catch((error) => showError(error, "Start"));
