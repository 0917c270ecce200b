// gapwatch dashboard: one plain ES module, no dependencies, no build step.
//
// What is fetched, and how often (every fetch is independent and fired at once on load):
//   indicator values  GET /v1/icbs/{icb}/indicators/{indicator}?by=&window=   every 1 s
//   gap series (SPC)  GET .../series?by=&measure=&group=                        every 15 s
//   feed freshness    GET /v1/freshness                                         every 5 s
//   small areas       GET /v1/icbs/{icb}/lsoas?indicator=&window=28d&limit=20   every 30 s
//   alerts            GET /v1/alerts?icb= and ?kind=feed on load, on a new ICB and after a
//                     reconnect; then every change from the SSE stream /v1/alerts/stream
//                     (read with fetch(), since EventSource cannot send a token)
// Polls skip while the tab is hidden, never overlap, and re-render only when the
// response text changed (the API's answers are cached: an unchanged view is a cheap 200).
//
// Every /v1 request carries `Authorization: Bearer <token>`. The token comes in the URL
// fragment (`/#token=...`, as `scripts/stack up` prints it: browsers never send a fragment
// to the server, so it stays out of access logs and Referer headers), is kept in this
// tab's sessionStorage and taken out of the address bar. Without one, or when the API
// answers 401, a sign-in form asks for one; nothing here ever logs it.

const POLL_VALUES_MS = 1000;
const POLL_SERIES_MS = 15000;
const POLL_FRESHNESS_MS = 5000;
const POLL_LSOA_MS = 30000;
const STALE_LAG_S = 900; // a feed whose newest event is over 15 minutes old is stale
const MAX_ALERTS = 50;
const WINDOWS = ["1h", "24h", "7d", "28d"];
const SERIES_BREAKDOWNS = ["imd_quintile", "imd_decile", "ethnic_group"];
const ETHNIC_GROUPS = ["white", "mixed", "asian", "black", "other"];
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

const state = { icb: "", indicator: "", by: "", window: "", measure: "difference", group: "" };
const catalogue = { icbs: new Map(), indicators: new Map() };
const alerts = new Map();
const freshAlertIds = new Set();
let values = null;
let freshness = [];
let lastAnnounced = 0;

// ---------------------------------------------------------------- formatting

const BREAKDOWN_LABELS = {
  imd_quintile: "IMD quintile",
  imd_decile: "IMD decile",
  ethnic_group: "Ethnic group",
  age_band: "Age band",
  sex: "Sex",
};
const BREAKDOWN_PHRASES = {
  imd_quintile: "IMD quintile",
  imd_decile: "IMD decile",
  ethnic_group: "ethnic group",
  age_band: "age band",
  sex: "sex",
};
const byPhrase = (by) => BREAKDOWN_PHRASES[by] || by;
const ETHNIC_LABELS = {
  white: "White",
  mixed: "Mixed or multiple",
  asian: "Asian",
  black: "Black",
  other: "Other ethnic group",
};
const WINDOW_LABELS = { "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days", "28d": "last 28 days" };
const MEASURE_LABELS = { difference: "difference", ratio: "ratio", sii: "slope index of inequality" };
const POINT_LABELS = {
  common_cause: "common cause",
  special_cause_concern: "special cause: concern",
  special_cause_improvement: "special cause: improvement",
  special_cause_neutral_high: "special cause: neutral (high)",
  special_cause_neutral_low: "special cause: neutral (low)",
};
// [icon class, letter, text] per variation icon name (NHS Making Data Count).
const VARIATION = {
  common_cause: ["common_cause", "", "Common cause variation: nothing unusual on the latest day"],
  concern_high: ["concern", "H", "Special cause of concern: the gap is unusually high"],
  concern_low: ["concern", "L", "Special cause of concern: the gap is unusually low"],
  improvement_high: ["improvement", "H", "Special cause improvement: unusually high"],
  improvement_low: ["improvement", "L", "Special cause improvement: the gap is unusually low"],
  neutral_high: ["neutral", "H", "Special cause, neither better nor worse: high"],
  neutral_low: ["neutral", "L", "Special cause, neither better nor worse: low"],
};
// How the gap sentence names each indicator: [subject, plural?].
const SUBJECTS = {
  ed_attendance_rate: ["A&E attendance rates", true],
  emergency_admission_rate: ["Emergency admission rates", true],
  emergency_admission_rate_u18: ["Emergency admission rates for under-18s", true],
  outpatient_dna_proportion: ["The share of outpatient appointments not attended", false],
  ed_4h_breach_proportion: ["The share of A&E attendances lasting over 4 hours", false],
  ed_12h_breach_proportion: ["The share of A&E attendances lasting over 12 hours", false],
  elective_wait_over_18w_proportion: ["The share of elective waits over 18 weeks", false],
  elective_wait_over_52w_proportion: ["The share of elective waits over 52 weeks", false],
  ethnicity_unknown_proportion: ["The share of records with ethnicity not known", false],
  residence_unknown_proportion: ["The share of records with residence not known", false],
};

const finite = (x) => typeof x === "number" && Number.isFinite(x);
const numberFormats = new Map();
function fmtNumber(x, dp) {
  if (!numberFormats.has(dp)) {
    numberFormats.set(
      dp,
      new Intl.NumberFormat("en-GB", { minimumFractionDigits: dp, maximumFractionDigits: dp }),
    );
  }
  return numberFormats.get(dp).format(x);
}
function fmtRate(x) {
  const a = Math.abs(x);
  return fmtNumber(x, a >= 1000 ? 0 : a >= 10 ? 1 : 2);
}
function fmtPct(x) {
  return `${fmtNumber(x * 100, Math.abs(x) < 0.01 ? 2 : 1)}%`;
}
/** A value in the indicator's unit, for people. */
function fmtValue(x, kind) {
  if (!finite(x)) return "–";
  return kind === "proportion" ? fmtPct(x) : fmtRate(x);
}
/** A difference in the indicator's unit (proportions: percentage points). */
function fmtDiff(x, kind) {
  if (!finite(x)) return "–";
  return kind === "proportion" ? `${fmtNumber(x * 100, 1)} percentage points` : fmtRate(x);
}
function fmtRatio(x) {
  return finite(x) ? fmtNumber(x, 2) : "–";
}
/** A plain number for the data tables: no separators, the API's unit. */
function plain(x, kind) {
  if (!finite(x)) return "";
  return kind === "proportion" ? x.toFixed(4) : x.toFixed(1);
}
function fmtDuration(s) {
  if (!finite(s)) return "–";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${fmtNumber(s / 3600, 1)} h`;
  return `${fmtNumber(s / 86400, 1)} days`;
}
const dateTimeFormat = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Europe/London",
  day: "numeric",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const minuteFormat = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Europe/London",
  day: "numeric",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
});
const dayFormat = new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", day: "numeric", month: "short" });
const fmtWhen = (iso) => (iso ? dateTimeFormat.format(new Date(iso)) : "–");
const fmtDay = (iso) => dayFormat.format(new Date(iso));
const areaShort = (name) =>
  (name || "").replace(/^NHS /, "").replace(/ (Integrated Care Board|ICB)$/, "");
const capitalise = (s) => s.charAt(0).toUpperCase() + s.slice(1);

function groupLabel(by, g) {
  if (g === "unknown") return "Unknown";
  if (by === "imd_quintile" || by === "imd_decile") {
    const last = by === "imd_quintile" ? "5" : "10";
    if (g === "1") return "1 most deprived";
    if (g === last) return `${last} least deprived`;
    return g;
  }
  if (by === "ethnic_group") return ETHNIC_LABELS[g] || capitalise(g);
  return capitalise(g);
}

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, String(v));
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function s(tag, attrs = {}, parent = null, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function clearChart(svg) {
  for (const child of [...svg.children]) {
    if (child.localName !== "title" && child.localName !== "desc") child.remove();
  }
}

function niceTicks(min, max, count) {
  if (!(max > min)) max = min + 1;
  const rough = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const f = rough / magnitude;
  const step = (f >= 7.5 ? 10 : f >= 3.5 ? 5 : f >= 1.5 ? 2 : 1) * magnitude;
  const ticks = [];
  for (let t = Math.floor(min / step) * step; t <= Math.ceil(max / step) * step + step / 2; t += step) {
    ticks.push(Number(t.toFixed(10)));
  }
  return ticks;
}

/** Axis labels: as many decimals as the tick step needs, no more. */
function tickFormatter(ticks, scale = 1, suffix = "") {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) * scale : 1;
  const dp = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return (t) => `${fmtNumber(t * scale, dp)}${suffix}`;
}

function setOptions(select, options, selected) {
  select.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
  if (options.some(([value]) => value === selected)) select.value = selected;
}

// ---------------------------------------------------------------- fetching

class HttpError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

async function problemDetail(response) {
  const text = await response.text();
  let detail = "";
  try {
    detail = JSON.parse(text).detail;
  } catch {
    detail = text.slice(0, 200);
  }
  return typeof detail === "string" ? detail : "";
}

/** A /v1 request with the token; a 401 hands over to the sign-in form (and throws). */
async function apiFetch(url, { signal, accept = "application/json", headers = {} } = {}) {
  const used = session.token;
  if (!used) {
    if (document.body.dataset.auth !== "required") requireSignIn("");
    throw new HttpError(401, "no token");
  }
  let response;
  try {
    response = await fetch(url, {
      signal,
      cache: "no-store",
      headers: { ...headers, Accept: accept, Authorization: `Bearer ${used}` },
    });
  } catch (err) {
    if (err.name !== "AbortError") revealBoard(used); // the API is down: show where
    throw err;
  }
  if (response.status === 401) {
    rejected(used, await problemDetail(response));
    throw new HttpError(401, "");
  }
  revealBoard(used); // anything but a 401 means the token got past the API's guard
  if (!response.ok) throw new HttpError(response.status, await problemDetail(response));
  return response;
}

/** After a sign-in the board stays hidden until the API has answered with the new token,
 * so nothing of an earlier token's view shows under the new one. */
function revealBoard(used) {
  if (document.body.dataset.auth === "checking" && used === session.token) {
    document.body.dataset.auth = "ok";
  }
}

async function fetchText(url, signal) {
  return (await apiFetch(url, { signal })).text();
}

/** A URL fetched every `everyMs` (never two at once, skipped while the tab is hidden). */
class Poller {
  constructor(everyMs, url, onData, onError) {
    Object.assign(this, { everyMs, url, onData, onError });
    this.generation = 0;
    this.last = null;
    this.controller = null;
    this.timer = null;
  }

  restart() {
    this.stop();
    this.tick();
  }

  stop() {
    this.generation += 1;
    this.last = null;
    this.controller?.abort();
    this.controller = null;
    clearTimeout(this.timer);
  }

  schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), ms);
  }

  async tick() {
    clearTimeout(this.timer);
    if (this.controller) return; // in flight: it schedules the next one
    const generation = this.generation;
    const url = this.url();
    if (url === null) {
      this.last = null;
      this.onData(null);
      return;
    }
    if (document.hidden && this.last !== null) {
      this.schedule(this.everyMs);
      return;
    }
    const started = performance.now();
    const controller = (this.controller = new AbortController());
    try {
      const text = await fetchText(url, controller.signal);
      if (generation !== this.generation) return;
      if (text !== this.last) {
        this.last = text;
        this.onData(JSON.parse(text));
      }
    } catch (err) {
      if (generation !== this.generation || err.name === "AbortError") return;
      this.last = null;
      if (err.status === 401) return; // signed out: the sign-in form restarts everything
      this.onError(err);
    } finally {
      if (this.controller === controller) this.controller = null;
    }
    if (generation === this.generation) {
      this.schedule(Math.max(0, this.everyMs - (performance.now() - started)));
    }
  }
}

// ---------------------------------------------------------------- the token

const TOKEN_KEY = "gapwatch.token";
const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const session = { token: null };

function storeToken(value) {
  session.token = value;
  try {
    sessionStorage.setItem(TOKEN_KEY, value);
  } catch {
    // storage blocked: the token lasts as long as this page
  }
}

function forgetToken() {
  session.token = null;
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing was kept
  }
}

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** A token in the fragment (`#token=...`) becomes this tab's token and leaves the address
 * bar (and so history, bookmarks and screenshots); the view's `?icb=...` query stays. */
function adoptFragmentToken() {
  const hash = location.hash.replace(/^#/, "");
  if (!hash.includes("token=")) return false;
  const found = (new URLSearchParams(hash).get("token") || "").trim();
  history.replaceState(history.state, "", location.pathname + location.search);
  if (!found) return false;
  storeToken(found);
  return true;
}

/** What a pasted value holds: a bare token, "Bearer <token>" or a dashboard URL. */
function tokenFromInput(text) {
  let value = text.trim().replace(/^Bearer\s+/i, "");
  const inUrl = /[#&]token=([^&\s]+)/.exec(value);
  if (inUrl) value = decodeURIComponent(inUrl[1]);
  return value;
}

/** The token's claims, unverified: only to say on screen whose token it is and until when
 * (the API checks every request). */
function claimsOf(value) {
  try {
    const part = value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

function describeToken(value) {
  const claims = claimsOf(value);
  if (!claims) return "Signed in";
  const codes = claims.role === "icb" ? claims.icbs : claims.role === "trust" ? claims.trusts : null;
  const scope = Array.isArray(codes) && codes.length ? ` for ${codes.join(", ")}` : "";
  const until = finite(claims.exp) ? `, until ${minuteFormat.format(new Date(claims.exp * 1000))}` : "";
  const role = claims.role === "icb" ? "ICB" : String(claims.role || "API");
  return `Signed in with a ${role} token${scope}${until}`;
}

function signInMessage(detail) {
  if (!detail) {
    return "Paste an API token to see the dashboard: from your service desk, `gapwatch token`, " +
      "or the link `scripts/stack up` prints.";
  }
  if (/expired/i.test(detail)) return "Your token has expired. Paste a new one to carry on.";
  return `The API did not accept this token (${detail}). Paste a valid one.`;
}

/** Stop everything that reads the API and ask for a token, saying why. */
function requireSignIn(detail) {
  for (const p of Object.values(pollers)) p.stop();
  alertStream.stop();
  const first = document.body.dataset.auth !== "required";
  document.body.dataset.auth = "required";
  $("signin").hidden = false;
  $("session").hidden = true;
  $("signin-message").textContent = signInMessage(detail);
  $("token-input").setAttribute("aria-invalid", detail ? "true" : "false");
  if (first) $("token-input").focus();
}

/** A 401 for the token in use (one for a token since replaced changes nothing). */
function rejected(used, detail) {
  if (used !== session.token) return;
  forgetToken();
  requireSignIn(detail || "the token was refused");
}

/** Start (or restart, with a new token) everything the page reads, from nothing. */
function startSession() {
  alerts.clear();
  freshAlertIds.clear();
  freshness = [];
  catalogue.icbs.clear();
  catalogue.indicators.clear();
  document.body.dataset.auth = "checking"; // the board shows once the API takes the token
  $("signin").hidden = true;
  $("session").hidden = false;
  $("session-info").textContent = describeToken(session.token);
  alertStream.start();
  loadAlerts();
  for (const p of Object.values(pollers)) p.restart();
  loadCatalogue()
    .then(() => {
      const before = JSON.stringify(state);
      normalise();
      writeUrl(false);
      renderAlerts();
      if (JSON.stringify(state) !== before) {
        for (const p of Object.values(pollers)) p.restart();
        loadAlerts();
      }
      settle("catalogue");
    })
    .catch((err) => {
      if (err.status === 401) return;
      const box = $("values-error");
      box.textContent = `Cannot load the ICB and indicator lists: ${err.message}`;
      box.hidden = false;
      settle("catalogue");
    });
}

function bindSignIn() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("token-input");
    const value = tokenFromInput(input.value);
    if (!TOKEN_SHAPE.test(value)) {
      $("signin-message").textContent =
        "That is not a token: a token is three parts separated by dots (eyJ…). Paste the whole of it.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.value = "";
    input.setAttribute("aria-invalid", "false");
    $("signin-message").textContent = "Checking the token…";
    storeToken(value);
    // One request first: a refused token then costs one 401, not one per panel.
    try {
      await apiFetch("/v1/indicators");
    } catch (err) {
      if (err.status === 401) {
        input.focus();
        return; // the form says why
      }
      // Anything else is not about the token: the board says what it is.
    }
    if (session.token === value) startSession();
  });
  $("sign-out").addEventListener("click", () => {
    // A reload leaves nothing of this token's data on the page.
    forgetToken();
    location.reload();
  });
  // A dashboard link with a new token pasted into this tab changes only the fragment.
  window.addEventListener("hashchange", () => {
    if (adoptFragmentToken()) startSession();
  });
}

// ---------------------------------------------------------------- first render

const pending = new Set(["catalogue", "values", "series", "freshness", "alerts", "lsoa"]);
function settle(part) {
  pending.delete(part);
  if (pending.size === 0 && document.body.dataset.ready !== "true") {
    document.body.dataset.ready = "true";
  }
}

// ---------------------------------------------------------------- URL state

function readUrl() {
  const q = new URLSearchParams(location.search);
  state.icb = (q.get("icb") || "QOP").toUpperCase();
  state.indicator = q.get("indicator") || "ed_attendance_rate";
  state.by = q.get("by") || "imd_quintile";
  state.window = WINDOWS.includes(q.get("window")) ? q.get("window") : "24h";
  state.measure = q.get("measure") || "difference";
  state.group = q.get("group") || "";
}

function writeUrl(push) {
  const q = new URLSearchParams({
    icb: state.icb,
    indicator: state.indicator,
    by: state.by,
    window: state.window,
  });
  if (SERIES_BREAKDOWNS.includes(state.by) && state.measure !== "difference") {
    q.set("measure", state.measure);
  }
  // The SPC choices join the URL only when they are not the defaults.
  if (state.by === "ethnic_group" && state.group && state.group !== defaultGroup()) {
    q.set("group", state.group);
  }
  const url = `${location.pathname}?${q}`;
  if (url !== location.pathname + location.search) {
    history[push ? "pushState" : "replaceState"](null, "", url);
  }
}

/** The ethnic group charted against the reference group unless the URL says otherwise. */
function defaultGroup() {
  const reference = values?.gap?.reference || "white";
  return ETHNIC_GROUPS.find((g) => g !== reference);
}

/** Make the state consistent with the catalogue and the controls show it. */
function normalise() {
  const icbs = catalogue.icbs;
  if (icbs.size && !icbs.has(state.icb)) state.icb = icbs.has("QOP") ? "QOP" : icbs.keys().next().value;
  const indicators = catalogue.indicators;
  if (indicators.size && !indicators.has(state.indicator)) {
    state.indicator = indicators.keys().next().value;
  }
  const indicator = indicators.get(state.indicator);
  const breakdowns = indicator ? indicator.breakdowns.map((b) => b.id) : [state.by];
  if (!breakdowns.includes(state.by)) state.by = breakdowns[0];
  const ethnic = state.by === "ethnic_group";
  if (!["difference", "ratio", "sii"].includes(state.measure) || (ethnic && state.measure === "sii")) {
    state.measure = "difference";
  }
  const reference = values?.gap?.reference || "white";
  const choices = ETHNIC_GROUPS.filter((g) => g !== reference);
  if (!choices.includes(state.group)) state.group = ethnic ? defaultGroup() : "";

  setOptions(
    $("breakdown-select"),
    breakdowns.map((b) => [b, BREAKDOWN_LABELS[b] || b]),
    state.by,
  );
  $("icb-select").value = state.icb;
  $("indicator-select").value = state.indicator;
  $("window-select").value = state.window;
  const sii = $("measure-select").querySelector('option[value="sii"]');
  sii.hidden = sii.disabled = ethnic;
  $("measure-select").value = state.measure;
  $("measure-select").disabled = !SERIES_BREAKDOWNS.includes(state.by);
  $("spc-group-field").hidden = !ethnic;
  setOptions($("spc-group-select"), choices.map((g) => [g, `${ETHNIC_LABELS[g]} vs ${ETHNIC_LABELS[reference]}`]), state.group);
  $("download-csv").href =
    `/v1/icbs/${encodeURIComponent(state.icb)}/indicators/${encodeURIComponent(state.indicator)}` +
    `/export.csv?${new URLSearchParams({ by: state.by, window: state.window })}`;
}

// ---------------------------------------------------------------- values by group

function renderValues(v) {
  const kind = v.kind;
  $("values-caption").textContent =
    `${v.title}, ${areaShort(v.area_name)}, ${WINDOW_LABELS[v.window.requested] || v.window.requested}` +
    ` (${minuteFormat.format(new Date(v.window.start))} to ${minuteFormat.format(new Date(v.window.end))} UK time), by ${byPhrase(v.by)}.` +
    ` ${capitalise(v.unit)}.`;
  renderGroupsChart(v);

  $("value-heading").textContent = kind === "proportion" ? "Proportion (0–1)" : "Rate per 100,000 a year";
  $("denominator-heading").textContent = kind === "proportion" ? "Denominator" : "Population";
  $("groups-table-caption").textContent = `${v.title} by ${byPhrase(v.by)}`;
  const rows = v.groups.map((g) =>
    h(
      "tr",
      { "data-group": g.group },
      h("th", { scope: "row" }, groupLabel(v.by, g.group)),
      h("td", { class: "num numerator" }, String(g.numerator)),
      h("td", { class: "num denominator" }, finite(g.denominator) ? String(Math.round(g.denominator)) : "–"),
      h("td", { class: "num value", "data-value": finite(g.value) ? g.value : "" }, finite(g.value) ? plain(g.value, kind) : "–"),
      h("td", { class: "num ci" }, finite(g.lower95) ? `${plain(g.lower95, kind)}–${plain(g.upper95, kind)}` : g.note || "–"),
    ),
  );
  $("groups-table").tBodies[0].replaceChildren(...rows);

  const t = v.total;
  $("total-numerator").textContent = String(t.numerator);
  $("total-denominator").textContent = finite(t.denominator) ? String(Math.round(t.denominator)) : "–";
  $("total-value").textContent = finite(t.value) ? plain(t.value, kind) : "–";
  $("total-ci").textContent = finite(t.lower95) ? `${plain(t.lower95, kind)}–${plain(t.upper95, kind)}` : "–";
  const b = v.benchmark;
  $("england-value").textContent = b && finite(b.value) ? plain(b.value, kind) : "–";
  $("england-ci").textContent = b && finite(b.lower95) ? `${plain(b.lower95, kind)}–${plain(b.upper95, kind)}` : "–";
  $("benchmark-text").textContent = b
    ? `${areaShort(v.area_name)} overall: ${fmtValue(t.value, kind)}; England ${fmtValue(b.value, kind)}. ` +
      `Compared with England: ${b.assessment.replace("_", " ")} (${b.significance}).`
    : "";
}

function renderGroupsChart(v) {
  const svg = $("groups-chart");
  clearChart(svg);
  const kind = v.kind;
  const groups = v.groups;
  const W = 640;
  const left = 130;
  const right = 80;
  const top = 40;
  const row = 26;
  const H = top + row * groups.length + 34;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const numbers = [];
  for (const g of [...groups, v.total]) numbers.push(g.value, g.lower95, g.upper95);
  if (v.benchmark) numbers.push(v.benchmark.value);
  const shown = numbers.filter(finite);
  let max = shown.length ? Math.max(...shown) : 1;
  if (max <= 0) max = kind === "proportion" ? 0.1 : 1;
  const ticks = niceTicks(0, max, 5);
  const hi = ticks[ticks.length - 1];
  const x = (val) => left + (val / hi) * (W - left - right);
  const bottom = top + row * groups.length;

  const axis = s("g", { class: "axis", "aria-hidden": "true" }, svg);
  const tickText = kind === "proportion" ? tickFormatter(ticks, 100, "%") : tickFormatter(ticks);
  for (const t of ticks) {
    s("line", { class: "gridline", x1: x(t), x2: x(t), y1: top - 4, y2: bottom }, axis);
    s("text", { class: "axis-label", x: x(t), y: bottom + 16, "text-anchor": "middle" }, axis, tickText(t));
  }

  groups.forEach((g, i) => {
    const y = top + row * i + row / 2;
    const label = groupLabel(v.by, g.group);
    const item = s("g", {
      class: "group",
      "data-group": g.group,
      "data-value": finite(g.value) ? g.value : "",
      "data-lower": finite(g.lower95) ? g.lower95 : "",
      "data-upper": finite(g.upper95) ? g.upper95 : "",
    }, svg);
    s("title", {}, item, finite(g.value)
      ? `${label}: ${fmtValue(g.value, kind)} (95% CI ${fmtValue(g.lower95, kind)} to ${fmtValue(g.upper95, kind)}), ${g.numerator} events`
      : `${label}: no value (${g.note || "no denominator"})`);
    s("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, item, label);
    if (!finite(g.value)) {
      s("text", { class: "axis-label", x: left + 4, y: y + 4 }, item, "no value");
      return;
    }
    if (finite(g.lower95) && finite(g.upper95)) {
      s("line", { class: "whisker", x1: x(g.lower95), x2: x(Math.min(g.upper95, hi)), y1: y, y2: y }, item);
      for (const end of [g.lower95, Math.min(g.upper95, hi)]) {
        s("line", { class: "whisker", x1: x(end), x2: x(end), y1: y - 5, y2: y + 5 }, item);
      }
    }
    s("circle", { class: "dot", cx: x(g.value), cy: y, r: 5.5 }, item);
    s("text", { x: W - right + 8, y: y + 4 }, item, fmtValue(g.value, kind));
  });

  const refs = s("g", { class: "references" }, svg);
  const refLine = (value, cls, label, labelY) => {
    if (!finite(value)) return;
    s("line", { class: cls, x1: x(value), x2: x(value), y1: top - 6, y2: bottom }, refs);
    const anchor = x(value) > W - right - 60 ? "end" : "start";
    s("text", { class: `${cls}-label`, x: x(value) + (anchor === "end" ? -4 : 4), y: labelY, "text-anchor": anchor }, refs,
      `${label} ${fmtValue(value, kind)}`);
  };
  refLine(v.total.value, "ref-total", "ICB total", top - 10);
  if (v.benchmark) refLine(v.benchmark.value, "ref-england", "England", top - 24);
}

// ---------------------------------------------------------------- the gap

function ciIncludes(lower, upper, nothing) {
  return finite(lower) && finite(upper) && lower <= nothing && upper >= nothing;
}

function gapSentence(v) {
  const gap = v.gap;
  const area = areaShort(v.area_name);
  if (!gap) {
    return `Inequality gaps are measured across IMD and ethnic groups: choose one of those breakdowns to see the gap.`;
  }
  const [subject, plural] =
    SUBJECTS[v.indicator] || (v.kind === "rate" ? [`${v.title} values`, true] : [`The ${v.title.toLowerCase()}`, false]);
  const are = plural ? "are" : "is";
  const those = plural ? "those" : "that";
  const pct = `${Math.round((gap.confidence || 0.95) * 100)}% CI`;
  if (gap.kind === "imd") {
    const part = v.by === "imd_decile" ? "tenth" : "fifth";
    if (!finite(gap.ratio)) {
      return `There is not enough data in this window to compare the most and least deprived ${part}s of ${area}.`;
    }
    let text = `${subject} in the most deprived ${part} of ${area} ${are} ${fmtRatio(gap.ratio)} times ${those} in the least deprived`;
    if (finite(gap.ratio_lower) && finite(gap.ratio_upper)) {
      text += ` (${pct} ${fmtRatio(gap.ratio_lower)}–${fmtRatio(gap.ratio_upper)})`;
    }
    if (ciIncludes(gap.ratio_lower, gap.ratio_upper, 1)) {
      text += `; the interval includes no difference (a ratio of 1), so this gap could be chance.`;
    } else {
      text += ".";
    }
    return text;
  }
  const usable = gap.comparisons.filter((c) => finite(c.ratio) && finite(c.ratio_lower) && finite(c.ratio_upper));
  const reference = ETHNIC_LABELS[gap.reference] || capitalise(gap.reference);
  if (!usable.length) {
    return `There is not enough data in this window to compare ethnic groups in ${area} with the ${reference} group.`;
  }
  const significant = usable.filter((c) => !ciIncludes(c.ratio_lower, c.ratio_upper, 1));
  const strength = (c) => Math.abs(Math.log(Math.max(c.ratio, 1e-9)));
  const pick = [...(significant.length ? significant : usable)].sort((a, b) => strength(b) - strength(a))[0];
  const label = ETHNIC_LABELS[pick.group] || capitalise(pick.group);
  let text =
    `${subject} in the ${label} group in ${area} ${are} ${fmtRatio(pick.ratio)} times ${those} in the ${reference} group` +
    ` (${pct} ${fmtRatio(pick.ratio_lower)}–${fmtRatio(pick.ratio_upper)})`;
  if (!significant.length) {
    text += `; every group's interval includes no difference from the ${reference} group (a ratio of 1).`;
  } else if (significant.length > 1) {
    const n = significant.length - 1;
    text += `. ${n} other group${n > 1 ? "s" : ""} also differ${n > 1 ? "" : "s"} clearly from the ${reference} group.`;
  } else {
    text += ".";
  }
  return text;
}

function withCi(value, lower, upper, format, nothing, unit = "") {
  if (!finite(value)) return "–";
  const parts = [format(value), unit];
  if (finite(lower) && finite(upper)) parts.push(` (95% CI ${format(lower)} to ${format(upper)})`);
  if (ciIncludes(lower, upper, nothing)) parts.push(" — includes no difference");
  return parts.join("");
}

function renderGap(v) {
  $("gap-sentence").textContent = gapSentence(v);
  const box = $("gap-summary");
  const gap = v.gap;
  const kind = v.kind;
  if (!gap) {
    box.replaceChildren();
    return;
  }
  // Differences: proportions in percentage points (the unit said once), rates as rates.
  const diff = (x) => (kind === "proportion" ? fmtNumber(x * 100, 1) : fmtRate(x));
  const pp = kind === "proportion" ? " percentage points" : "";
  if (gap.kind === "imd") {
    const most = gap.most_deprived;
    const least = gap.least_deprived;
    const rows = [
      [`Absolute gap (${most} minus ${least})`, withCi(gap.absolute, gap.absolute_lower, gap.absolute_upper, diff, 0, pp), "absolute"],
      [`Ratio (${most} ÷ ${least})`, withCi(gap.ratio, gap.ratio_lower, gap.ratio_upper, fmtRatio, 1), "ratio"],
      ["Slope index of inequality (SII)", withCi(gap.sii, gap.sii_lower, gap.sii_upper, diff, 0, pp), "sii"],
      ["Relative index of inequality (RII)", withCi(gap.rii, gap.rii_lower, gap.rii_upper, fmtRatio, 1), "rii"],
    ];
    const list = h("dl", { class: "gap-list" });
    for (const [term, text, measure] of rows) {
      list.append(h("dt", {}, term), h("dd", { "data-measure": measure }, text));
    }
    box.replaceChildren(
      list,
      h("p", { class: "muted" },
        "SII and RII follow PHE's convention: a negative SII, or an RII below 1, means higher values in more deprived areas.",
        gap.note ? ` ${gap.note}` : null),
    );
    return;
  }
  const reference = ETHNIC_LABELS[gap.reference] || capitalise(gap.reference);
  const table = h("table", { class: "data compact" },
    h("caption", {}, `Each group against the ${reference} group`),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Group"),
      h("th", { scope: "col" }, "Difference"),
      h("th", { scope: "col" }, "Ratio"))),
    h("tbody", {}, ...gap.comparisons.map((c) => h("tr", { "data-group": c.group },
      h("th", { scope: "row" }, ETHNIC_LABELS[c.group] || capitalise(c.group)),
      h("td", {}, withCi(c.difference, c.difference_lower, c.difference_upper, diff, 0, pp)),
      h("td", {}, withCi(c.ratio, c.ratio_lower, c.ratio_upper, fmtRatio, 1))))));
  box.replaceChildren(h("div", { class: "table-wrap" }, table));
}

// ---------------------------------------------------------------- SPC chart

function seriesUrl() {
  if (!SERIES_BREAKDOWNS.includes(state.by)) return null;
  const q = new URLSearchParams({ by: state.by, measure: state.measure, period: "day", points: "90" });
  if (state.by === "ethnic_group") q.set("group", state.group);
  return `/v1/icbs/${encodeURIComponent(state.icb)}/indicators/${encodeURIComponent(state.indicator)}/series?${q}`;
}

function fmtSeriesValue(x, measure) {
  if (measure === "ratio") return fmtRatio(x);
  const kind = catalogue.indicators.get(state.indicator)?.kind || values?.kind;
  return fmtDiff(x, kind);
}

function renderVariation(series) {
  const box = $("variation-icon");
  const name = series?.variation || "";
  box.dataset.variation = name;
  if (!series || !series.points.length) {
    box.replaceChildren("No variation icon: no charted periods yet.");
    return;
  }
  if (series.points[series.points.length - 1].trial) {
    box.replaceChildren("No variation icon yet: trial limits (fewer than 13 periods).");
    return;
  }
  const [cls, letter, text] = VARIATION[name] || ["common_cause", "", name.replaceAll("_", " ")];
  const icon = s("svg", { viewBox: "0 0 32 32", "aria-hidden": "true", focusable: "false" });
  s("circle", { cx: 16, cy: 16, r: 15, class: `icon-${cls}` }, icon);
  if (letter) s("text", { x: 16, y: 20.5, "text-anchor": "middle" }, icon, letter);
  box.replaceChildren(icon, h("span", {}, `Variation: ${text}`));
}

function renderSpc(series) {
  const svg = $("spc-chart");
  clearChart(svg);
  const tbody = $("spc-table").tBodies[0];
  const W = 720;
  const H = 280;
  const left = 70;
  const right = 16;
  const top = 14;
  const bottom = H - 40;
  renderVariation(series);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const empty = (text) => {
    svg.setAttribute("viewBox", `0 0 ${W} 60`);
    s("text", { class: "empty", x: 10, y: 36 }, svg, text);
  };
  if (!series) {
    $("spc-caption").textContent = `Gap series are charted for IMD and ethnic-group breakdowns.`;
    $("spc-notes").textContent = "";
    empty("No gap series for this breakdown.");
    tbody.replaceChildren();
    return;
  }
  const measure = series.measure;
  const pts = series.points;
  const versus = series.group ? ` (${ETHNIC_LABELS[series.group] || series.group} vs ${ETHNIC_LABELS[series.reference_group] || series.reference_group})` : "";
  $("spc-caption").textContent =
    `${series.title}, ${areaShort(series.icb_name)}: ${MEASURE_LABELS[measure] || measure}${versus} by ` +
    `${byPhrase(series.by)}, one point per closed ${series.period}. ` +
    `Improvement is a ${series.improvement}.`;
  const notes = [];
  if (series.missing.length) notes.push(`${series.missing.length} periods with no value are left out.`);
  if (series.open_period && finite(series.open_period.value)) {
    notes.push(`The open period so far (not charted): ${fmtSeriesValue(series.open_period.value, measure)}.`);
  }
  $("spc-notes").textContent = notes.join(" ");
  tbody.replaceChildren(...pts.map((p) => h("tr", {},
    h("td", {}, fmtDay(p.period_start)), h("td", {}, fmtSeriesValue(p.value, measure)),
    h("td", {}, fmtSeriesValue(p.mean, measure)), h("td", {}, fmtSeriesValue(p.lpl, measure)),
    h("td", {}, fmtSeriesValue(p.upl, measure)), h("td", {}, POINT_LABELS[p.point_type] || p.point_type),
    h("td", {}, p.rule || ""))));
  if (!pts.length) {
    empty("No closed periods with a value yet.");
    return;
  }

  const ys = [];
  for (const p of pts) ys.push(p.value, p.lpl, p.upl, p.mean);
  const shown = ys.filter(finite);
  const ticks = niceTicks(Math.min(...shown), Math.max(...shown), 5);
  const lo = ticks[0];
  const hi = ticks[ticks.length - 1];
  const y = (val) => bottom - ((val - lo) / (hi - lo)) * (bottom - top);
  const step = pts.length > 1 ? (W - left - right - 12) / (pts.length - 1) : 0;
  const x = (i) => left + 6 + (pts.length > 1 ? i * step : (W - left - right) / 2);

  const axis = s("g", { class: "axis", "aria-hidden": "true" }, svg);
  const proportion = (catalogue.indicators.get(state.indicator)?.kind || values?.kind) === "proportion";
  const tickText = measure !== "ratio" && proportion ? tickFormatter(ticks, 100, " pp") : tickFormatter(ticks);
  for (const t of ticks) {
    s("line", { class: "gridline", x1: left, x2: W - right, y1: y(t), y2: y(t) }, axis);
    s("text", { class: "axis-label", x: left - 6, y: y(t) + 4, "text-anchor": "end" }, axis, tickText(t));
  }
  const labelled = new Set([0, Math.floor((pts.length - 1) / 2), pts.length - 1]);
  for (const i of labelled) {
    s("text", { class: "axis-label", x: x(i), y: bottom + 18, "text-anchor": "middle" }, axis, fmtDay(pts[i].period_start));
  }

  const path = (key) => {
    let d = "";
    let pen = "M";
    pts.forEach((p, i) => {
      if (finite(p[key])) {
        d += `${pen}${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`;
        pen = "L";
      } else {
        pen = "M";
      }
    });
    return d;
  };
  const lines = s("g", { class: "lines", "aria-hidden": "true" }, svg);
  for (const [key, cls] of [["lower_2sigma", "spc-sigma"], ["upper_2sigma", "spc-sigma"], ["lpl", "spc-limit"],
    ["upl", "spc-limit"], ["mean", "spc-mean"], ["value", "spc-line"]]) {
    const d = path(key);
    if (d) s("path", { class: cls, d }, lines);
  }

  const marks = s("g", { class: "marks", "aria-hidden": "true" }, svg);
  const points = s("g", { class: "points" }, svg);
  pts.forEach((p, i) => {
    const cx = x(i);
    const cy = y(p.value);
    const type = p.point_type;
    if (type === "special_cause_concern") {
      s("rect", { class: "mark mark-concern", x: cx - 7, y: cy - 7, width: 14, height: 14 }, marks);
    } else if (type === "special_cause_improvement") {
      s("path", { class: "mark mark-improvement", d: `M${cx},${cy - 9}L${cx + 9},${cy}L${cx},${cy + 9}L${cx - 9},${cy}Z` }, marks);
    } else if (type.startsWith("special_cause_neutral")) {
      s("path", { class: "mark mark-neutral", d: `M${cx},${cy - 10}L${cx + 9},${cy + 6}L${cx - 9},${cy + 6}Z` }, marks);
    }
    const dot = s("circle", {
      class: `pt pt-${type}`,
      cx,
      cy,
      r: type === "common_cause" ? 3.5 : 4.5,
      "data-point-type": type,
      "data-rule": p.rule || "",
      "data-period": p.period_start,
      "data-value": p.value,
    }, points);
    const rule = type !== "common_cause" && p.rule ? ` (${p.rule})` : "";
    s("title", {}, dot, `${fmtDay(p.period_start)}: ${fmtSeriesValue(p.value, measure)}, ${POINT_LABELS[type] || type}${rule}`);
  });
}

// ---------------------------------------------------------------- alerts (SSE)

function upsertAlert(alert, live) {
  const known = alerts.get(alert.id);
  if (known && known.updated_at > alert.updated_at) return;
  alerts.set(alert.id, alert);
  if (live) freshAlertIds.add(alert.id);
}

function fillAlert(li, a) {
  if (li.dataset.updated === a.updated_at && li.dataset.state === a.state) return;
  li.dataset.state = a.state;
  li.dataset.updated = a.updated_at;
  li.dataset.kind = a.kind;
  const what = a.kind === "gap"
    ? [a.annotations?.indicator_title || a.indicator, a.breakdown && (BREAKDOWN_LABELS[a.breakdown] || a.breakdown), a.measure]
        .filter(Boolean).join(", ")
    : `feed from trust ${a.trust}`;
  li.replaceChildren(
    h("span", { class: "state" }, a.state === "firing" ? "Firing" : "Resolved"), " ",
    h("span", { class: "summary" }, a.summary),
    h("span", { class: "meta" },
      [a.rule, what, `since ${fmtWhen(a.starts_at)}`, `updated ${fmtWhen(a.updated_at)}`].filter(Boolean).join(" · ")),
  );
}

function renderAlerts() {
  const shown = [...alerts.values()]
    .filter((a) => a.icb === state.icb)
    .sort((a, b) => (a.updated_at < b.updated_at ? 1 : a.updated_at > b.updated_at ? -1 : 0))
    .slice(0, MAX_ALERTS);
  const list = $("alerts-list");
  const existing = new Map([...list.children].map((li) => [li.dataset.alertId, li]));
  let previous = null;
  for (const a of shown) {
    let li = existing.get(a.id);
    existing.delete(a.id);
    if (!li) {
      li = h("li", { "data-alert-id": a.id });
      if (freshAlertIds.has(a.id)) li.classList.add("fresh");
    }
    fillAlert(li, a);
    const wanted = previous ? previous.nextSibling : list.firstChild;
    if (li !== wanted) list.insertBefore(li, wanted);
    previous = li;
  }
  for (const li of existing.values()) li.remove();
  freshAlertIds.clear();
  const firing = shown.filter((a) => a.state === "firing").length;
  $("alerts-caption").textContent =
    `${areaShort(catalogue.icbs.get(state.icb)?.name) || state.icb}: ${firing} firing, ${shown.length - firing} resolved recently. Newest first.`;
  $("alerts-empty").hidden = shown.length > 0;
}

function setStreamStatus(text) {
  const pill = $("alerts-status");
  if (pill.textContent !== text) pill.textContent = text;
  pill.dataset.state = text;
}

/** The ICB's alerts and every stale-feed alert (the stream then keeps both current). */
async function loadAlerts() {
  const icb = state.icb;
  try {
    const [own, feeds] = await Promise.all([
      fetchText(`/v1/alerts?${new URLSearchParams({ icb })}`),
      fetchText("/v1/alerts?kind=feed"),
    ]);
    for (const alert of [...JSON.parse(own), ...JSON.parse(feeds)]) upsertAlert(alert, false);
  } catch (err) {
    if (err.status === 401) return; // signing in
    $("alerts-caption").textContent = `Alerts are not available: ${err.message}`;
  }
  renderAlerts();
  renderFreshness();
  settle("alerts");
}

// EventSource cannot send an Authorization header, so the stream is read with fetch():
// the text/event-stream format parsed as the HTML standard says (event:, data:, id:,
// retry:, comments; lines ending in LF, CR or CRLF), and reconnected as EventSource
// would, after the server's retry time and with Last-Event-ID, backing off to 30 s
// while the API refuses or is down.

const STREAM_URL = "/v1/alerts/stream";
const STREAM_MAX_BACKOFF_MS = 30000;
const STREAM_SILENCE_MS = 45000; // the API sends a comment every 15 s: this long silent is a dead connection
const ALERT_CHANGES = new Set(["new", "updated", "resolved"]);

class EventStreamParser {
  constructor(lastEventId, onEvent) {
    this.onEvent = onEvent;
    this.lastEventId = lastEventId;
    this.retryMs = null;
    this.partial = "";
    this.skipLf = false;
    this.type = "";
    this.data = [];
  }

  push(chunk) {
    let text = chunk;
    if (this.skipLf && text.startsWith("\n")) text = text.slice(1);
    this.skipLf = false;
    const buffer = this.partial + text;
    let start = 0;
    for (let i = 0; i < buffer.length; i += 1) {
      const c = buffer[i];
      if (c !== "\n" && c !== "\r") continue;
      this.line(buffer.slice(start, i));
      if (c === "\r") {
        if (i + 1 < buffer.length) {
          if (buffer[i + 1] === "\n") i += 1;
        } else {
          this.skipLf = true; // a CRLF split between two chunks
        }
      }
      start = i + 1;
    }
    this.partial = buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment (the keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
  }

  dispatch() {
    const type = this.type || "message";
    this.type = "";
    if (this.data.length === 0) return;
    const data = this.data.join("\n");
    this.data = [];
    this.onEvent({ type, data, lastEventId: this.lastEventId });
  }
}

class AlertStream {
  constructor() {
    this.generation = 0;
    this.controller = null;
    this.timer = null;
    this.lastEventId = "";
    this.retryMs = 2000;
    this.failures = 0;
    this.opens = 0;
  }

  start() {
    this.stop();
    this.lastEventId = "";
    this.failures = 0;
    this.opens = 0;
    this.connect(this.generation);
  }

  stop() {
    this.generation += 1;
    clearTimeout(this.timer);
    this.controller?.abort();
    this.controller = null;
  }

  async connect(generation) {
    setStreamStatus(this.opens ? "reconnecting" : "connecting");
    const controller = (this.controller = new AbortController());
    let silence = null;
    const watch = () => {
      clearTimeout(silence);
      silence = setTimeout(() => controller.abort(), STREAM_SILENCE_MS);
    };
    let opened = false;
    let refused = null;
    watch();
    try {
      // Every ICB's alerts: the list filters by the ICB shown, and stale-feed alerts mark
      // the freshness table whichever ICB a trust belongs to.
      const response = await apiFetch(STREAM_URL, {
        signal: controller.signal,
        accept: "text/event-stream",
        headers: this.lastEventId ? { "Last-Event-ID": this.lastEventId } : {},
      });
      if (generation !== this.generation) return;
      opened = true;
      this.opened();
      const parser = new EventStreamParser(this.lastEventId, (event) => this.onEvent(event));
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        watch();
        const { value, done } = await reader.read();
        if (done || generation !== this.generation) break;
        parser.push(decoder.decode(value, { stream: true }));
        this.lastEventId = parser.lastEventId;
        if (parser.retryMs !== null) this.retryMs = parser.retryMs;
      }
    } catch (err) {
      if (generation !== this.generation || err.status === 401) return; // 401: signing in
      if (err.status === 403) refused = err.message;
    } finally {
      clearTimeout(silence);
      if (this.controller === controller) this.controller = null;
    }
    if (generation !== this.generation) return;
    if (refused !== null) {
      // This token may not follow alerts: trying again would not change that.
      setStreamStatus("unavailable");
      $("alerts-caption").textContent = `Live alerts are not available: ${refused}`;
      return;
    }
    // A stream that ended after opening comes back after the server's retry time, as
    // EventSource's would; one that failed to open backs off, doubling, to 30 s.
    this.failures = opened ? 0 : this.failures + 1;
    const backoff = this.retryMs * 2 ** Math.max(0, this.failures - 1);
    const delay = Math.min(STREAM_MAX_BACKOFF_MS, backoff) * (0.8 + 0.4 * Math.random());
    setStreamStatus(opened ? "reconnecting" : "unavailable");
    this.timer = setTimeout(() => this.connect(generation), delay);
  }

  opened() {
    setStreamStatus("live");
    this.opens += 1;
    if (this.opens > 1) loadAlerts(); // catch up on anything the stream no longer holds
  }

  onEvent(event) {
    if (!ALERT_CHANGES.has(event.type)) return;
    let alert;
    try {
      alert = JSON.parse(event.data);
    } catch {
      return;
    }
    upsertAlert(alert, true);
    renderAlerts();
    if (alert.kind === "feed") renderFreshness();
  }
}

const alertStream = new AlertStream();

// ---------------------------------------------------------------- feed freshness

function staleness(row) {
  const alert = alerts.get(`feed:${row.provider_code}`);
  if (alert && alert.state === "firing") return "stale-feed alert";
  if (finite(row.lag_seconds) && row.lag_seconds > STALE_LAG_S) return `no event for ${fmtDuration(row.lag_seconds)}`;
  return "";
}

function renderFreshness() {
  const rows = freshness.map((row) => ({ row, why: staleness(row) }));
  rows.sort((a, b) => (b.why ? 1 : 0) - (a.why ? 1 : 0) ||
    (a.row.provider_name || a.row.provider_code).localeCompare(b.row.provider_name || b.row.provider_code));
  $("freshness-table").tBodies[0].replaceChildren(...rows.map(({ row, why }) => h(
    "tr",
    { "data-trust": row.provider_code, "data-stale": why ? "true" : "false" },
    h("th", { scope: "row" }, row.provider_name || row.provider_code, " ", h("span", { class: "code" }, row.provider_code)),
    h("td", { class: "status" }, why
      ? [h("span", { "aria-hidden": "true" }, "⚠ "), "Stale", h("span", { class: "why" }, why)]
      : "OK"),
    h("td", { class: "num" }, String(row.events_last_hour)),
    h("td", { class: "num" }, fmtDuration(row.lag_seconds)),
    h("td", {}, fmtWhen(row.last_event_at)),
  )));
  const stale = rows.filter((r) => r.why).length;
  $("freshness-caption").textContent =
    `${stale} of ${rows.length} trust feeds stale (a stale-feed alert, or no event for over 15 minutes).`;
}

// ---------------------------------------------------------------- small areas

function lsoaUrl() {
  const q = new URLSearchParams({ indicator: state.indicator, window: "28d", limit: "20" });
  return `/v1/icbs/${encodeURIComponent(state.icb)}/lsoas?${q}`;
}

function renderLsoas(data) {
  const kind = catalogue.indicators.get(state.indicator)?.kind || "rate";
  const rows = (data.lsoas || []).map((l) => h(
    "tr",
    { "data-lsoa": l.lsoa, "data-flag": l.deprived_in_affluent_place ? "deprived-in-affluent" : null },
    h("th", { scope: "row" }, l.name ? `${l.name} ` : "", h("span", { class: "muted" }, l.lsoa)),
    h("td", {}, l.lad_name || "–"),
    h("td", { class: "num" }, l.imd_decile ?? "–"),
    h("td", { class: "num numerator" }, l.numerator_display ?? (l.numerator ?? "–")),
    h("td", { class: "num" }, finite(l.population) ? fmtNumber(l.population, 0) : "–"),
    h("td", { class: "num ci" }, finite(l.rate)
      ? `${fmtValue(l.rate, kind)}${finite(l.lower95) ? ` (${fmtValue(l.lower95, kind)} to ${fmtValue(l.upper95, kind)})` : ""}`
      : "suppressed"),
    h("td", {}, l.deprived_in_affluent_place ? h("span", { class: "flag" }, "Deprived area in an affluent place") : ""),
  ));
  const table = h("table", { id: "lsoa-table", class: "data compact" },
    h("caption", { class: "visually-hidden" }, "Small areas with the most events, last 28 days"),
    h("thead", {}, h("tr", {},
      ...["LSOA", "Local authority", "IMD decile", "Events", "Population", "Value (95% CI)", "Note"].map((t, i) =>
        h("th", { scope: "col", class: [2, 3, 4, 5].includes(i) ? "num" : null }, t)))),
    h("tbody", {}, ...rows));
  $("lsoa-body").replaceChildren(
    h("div", { class: "scroll", tabindex: "0", "aria-label": "Small areas table" }, table),
    data.disclosure ? h("p", { class: "muted" }, data.disclosure) : null,
  );
  settle("lsoa");
}

function lsoaUnavailable(err) {
  const why = err?.status === 403 && err.message ? `: ${err.message}` : ".";
  $("lsoa-body").replaceChildren(
    h("p", { id: "lsoa-unavailable", class: "muted" }, `Small-area figures are not available${why}`),
  );
  settle("lsoa");
}

// ---------------------------------------------------------------- last updated

function updateLastUpdated(asOf) {
  const el = $("last-updated");
  el.textContent = asOf;
  el.setAttribute("datetime", asOf);
  const now = Date.now();
  if (now - lastAnnounced >= 60000) {
    lastAnnounced = now;
    $("announcer").textContent = `Figures updated, as of ${fmtWhen(asOf)} UK time.`;
  }
  tickAgo();
}

function tickAgo() {
  const asOf = $("last-updated").getAttribute("datetime");
  if (!asOf) return;
  const seconds = Math.max(0, (Date.now() - Date.parse(asOf)) / 1000);
  const text = `(${fmtDuration(seconds)} ago)`;
  const ago = $("last-updated-ago");
  if (ago.textContent !== text) ago.textContent = text;
}

// ---------------------------------------------------------------- wiring

const pollers = {
  values: new Poller(
    POLL_VALUES_MS,
    () =>
      `/v1/icbs/${encodeURIComponent(state.icb)}/indicators/${encodeURIComponent(state.indicator)}?` +
      new URLSearchParams({ by: state.by, window: state.window }),
    (v) => {
      const hadReference = values?.gap?.reference;
      values = v;
      $("values-error").hidden = true;
      document.querySelector(".area-values").removeAttribute("aria-busy");
      renderValues(v);
      renderGap(v);
      updateLastUpdated(v.as_of);
      document.body.dataset.updatedAt = String(Date.now());
      if (v.gap?.reference && v.gap.reference !== hadReference) {
        const group = state.group;
        normalise();
        if (state.group !== group) pollers.series.restart();
      }
      settle("values");
    },
    (err) => {
      const box = $("values-error");
      box.textContent = err.status && err.status < 500
        ? `Cannot show this view: ${err.message}`
        : `The API is not answering (${err.message}); retrying every second.`;
      box.hidden = false;
      settle("values");
    },
  ),
  series: new Poller(
    POLL_SERIES_MS,
    seriesUrl,
    (series) => {
      renderSpc(series);
      settle("series");
    },
    (err) => {
      renderSpc(null);
      $("spc-caption").textContent = `The gap series is not available: ${err.message}`;
      settle("series");
    },
  ),
  freshness: new Poller(
    POLL_FRESHNESS_MS,
    () => "/v1/freshness",
    (rows) => {
      freshness = rows;
      renderFreshness();
      settle("freshness");
    },
    (err) => {
      $("freshness-caption").textContent = `Feed freshness is not available: ${err.message}`;
      settle("freshness");
    },
  ),
  lsoa: new Poller(POLL_LSOA_MS, lsoaUrl, renderLsoas, lsoaUnavailable),
};

function onControlsChanged(which) {
  normalise();
  writeUrl(true);
  if (which !== "spc") {
    document.querySelector(".area-values").setAttribute("aria-busy", "true");
    pollers.values.restart();
  }
  if (which !== "window") pollers.series.restart();
  if (which === "icb" || which === "indicator") pollers.lsoa.restart();
  if (which === "icb") {
    renderAlerts();
    loadAlerts();
  }
}

/** The CSV link names the export's URL, but a plain link cannot send the token: the file
 * is fetched with it and handed to the browser as a download. */
async function downloadCsv(event) {
  event.preventDefault();
  const link = event.currentTarget;
  if (link.getAttribute("aria-busy") === "true") return;
  link.setAttribute("aria-busy", "true");
  try {
    const response = await apiFetch(link.getAttribute("href"), { accept: "text/csv" });
    const disposition = response.headers.get("Content-Disposition") || "";
    const name = /filename="([^"]+)"/.exec(disposition)?.[1] || "gapwatch.csv";
    const url = URL.createObjectURL(await response.blob());
    const save = h("a", { href: url, download: name, hidden: true });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    if (err.status === 401) return; // signing in
    const box = $("values-error");
    box.textContent = `The CSV could not be downloaded: ${err.message}`;
    box.hidden = false;
  } finally {
    link.removeAttribute("aria-busy");
  }
}

function bindControls() {
  const bind = (id, key, which) =>
    $(id).addEventListener("change", (event) => {
      state[key] = event.target.value;
      onControlsChanged(which);
    });
  bind("icb-select", "icb", "icb");
  bind("indicator-select", "indicator", "indicator");
  bind("breakdown-select", "by", "by");
  bind("window-select", "window", "window");
  bind("measure-select", "measure", "spc");
  bind("spc-group-select", "group", "spc");
  $("controls").addEventListener("submit", (event) => event.preventDefault());
  $("download-csv").addEventListener("click", downloadCsv);
  window.addEventListener("popstate", () => {
    readUrl();
    normalise();
    for (const p of Object.values(pollers)) p.restart();
    renderAlerts();
    loadAlerts();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) for (const p of Object.values(pollers)) p.tick();
  });
  const toggle = $("large-text-toggle");
  const apply = (on) => {
    document.documentElement.classList.toggle("large-text", on);
    toggle.setAttribute("aria-pressed", String(on));
  };
  let stored = false;
  try {
    stored = localStorage.getItem("gapwatch.largeText") === "1";
  } catch {
    // storage blocked: the toggle still works for this page
  }
  apply(stored);
  toggle.addEventListener("click", () => {
    const on = toggle.getAttribute("aria-pressed") !== "true";
    apply(on);
    try {
      localStorage.setItem("gapwatch.largeText", on ? "1" : "0");
    } catch {
      // not kept
    }
  });
}

/** The ICBs this token may see (an ICB token: its own) and the indicators. */
async function loadCatalogue() {
  const [icbs, indicators] = await Promise.all([
    fetchText("/v1/icbs").then(JSON.parse),
    fetchText("/v1/indicators").then(JSON.parse),
  ]);
  catalogue.icbs.clear();
  catalogue.indicators.clear();
  for (const icb of icbs) catalogue.icbs.set(icb.ods_code, icb);
  for (const ind of indicators) catalogue.indicators.set(ind.id, ind);
  setOptions(
    $("icb-select"),
    icbs
      .map((i) => [i.ods_code, `${areaShort(i.name)} (${i.ods_code})`])
      .sort((a, b) => a[1].localeCompare(b[1])),
    state.icb,
  );
  setOptions($("indicator-select"), indicators.map((i) => [i.id, i.title]), state.indicator);
}

function boot() {
  const fromLink = adoptFragmentToken();
  readUrl();
  bindControls();
  bindSignIn();
  normalise();
  setInterval(tickAgo, 1000);
  if (!fromLink) session.token = storedToken();
  if (session.token) {
    startSession(); // everything at once: the data requests do not wait for the catalogue
  } else {
    requireSignIn("");
  }
}

boot();
