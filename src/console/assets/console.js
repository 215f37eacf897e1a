// qrhub operators' console. Plain JavaScript, no framework, no build step.
//
// Every piece of data reaches the page through textContent or element attributes set one by
// one (see el() below): nothing the API returns is ever parsed as markup.
//
// The operator's credentials live in this tab only (sessionStorage) and go out as HTTP Basic
// on every call to /admin/v1. A 401 clears them and brings the sign-in form back.
'use strict';

(function () {
  const API = '/admin/v1';
  const POLL_MS = 5000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const STORE_KEY = 'qrhub.console.credentials';

  const PAYMENT_STATES = ['WAITING_FOR_SCAN', 'MATCHED', 'FORWARDED', 'APPROVED', 'DECLINED',
    'UNKNOWN', 'CONFIRMED', 'REVERSED', 'EXPIRED'];

  // ISO 4217 numeric code -> [alphabetic code, minor-unit exponent]. Amounts on the wire are
  // integer minor units; the exponent is used only to place the decimal point for display.
  const CURRENCIES = {
    '710': ['ZAR', 2], '840': ['USD', 2], '978': ['EUR', 2], '826': ['GBP', 2],
    '036': ['AUD', 2], '124': ['CAD', 2], '756': ['CHF', 2], '156': ['CNY', 2],
    '356': ['INR', 2], '986': ['BRL', 2], '072': ['BWP', 2], '516': ['NAD', 2],
    '426': ['LSL', 2], '748': ['SZL', 2], '894': ['ZMW', 2], '404': ['KES', 2],
    '566': ['NGN', 2], '834': ['TZS', 2], '936': ['GHS', 2], '480': ['MUR', 2],
    '818': ['EGP', 2], '504': ['MAD', 2], '949': ['TRY', 2], '985': ['PLN', 2],
    '752': ['SEK', 2], '578': ['NOK', 2], '208': ['DKK', 2], '203': ['CZK', 2],
    '348': ['HUF', 2], '702': ['SGD', 2], '344': ['HKD', 2], '554': ['NZD', 2],
    '784': ['AED', 2], '682': ['SAR', 2], '484': ['MXN', 2],
    '392': ['JPY', 0], '410': ['KRW', 0], '800': ['UGX', 0], '646': ['RWF', 0],
    '952': ['XOF', 0], '950': ['XAF', 0], '152': ['CLP', 0], '704': ['VND', 0],
    '352': ['ISK', 0], '108': ['BIF', 0],
    '048': ['BHD', 3], '414': ['KWD', 3], '512': ['OMR', 3], '788': ['TND', 3],
    '400': ['JOD', 3], '368': ['IQD', 3], '434': ['LYD', 3],
  };

  // What each timeline event is, in words, by kind and direction (IN: received by the hub).
  const EVENT_LABELS = {
    'CREATE_QR_CODE IN': 'QR code requested',
    'CREATE_QR_CODE OUT': 'QR code issued',
    'PAY IN': 'Pay received',
    'PAY OUT': 'Pay sent',
    'SCAN IN': 'Scan received',
    'SCAN OUT': 'Scan answered',
    'PAY_RESPONSE IN': 'Partner answer',
    'PAY_RESPONSE OUT': 'POS answer',
    'CONFIRMATION IN': 'Confirmation received',
    'CONFIRMATION OUT': 'Confirmation sent',
    'REVERSAL IN': 'Reversal received',
    'REVERSAL OUT': 'Reversal sent',
    'POS_GONE IN': 'POS went away before a scan',
    'UNADVISED_REVERSAL OUT': 'Hub reversed an approval nobody advised',
  };

  // ---------------------------------------------------------------- small DOM helpers

  const $ = (id) => document.getElementById(id);

  // An element with attributes and children; strings become text nodes, never markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'text') node.textContent = String(value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function clear(node) {
    node.replaceChildren();
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  // ---------------------------------------------------------------- formatting

  function currencyOf(numeric) {
    return CURRENCIES[String(numeric)] || null;
  }

  // Minor units to a display string of major units: decimal point placed by string
  // manipulation of the integer, so no rounding ever happens. Unknown currencies show the
  // minor units as they are, labelled so.
  function formatMoney(amount, currency) {
    const known = currencyOf(currency);
    const digits = String(Math.abs(Math.trunc(Number(amount))));
    const sign = Number(amount) < 0 ? '-' : '';
    if (!known) return `${sign}${group(digits)} (minor units, ${currency})`;
    const [code, exponent] = known;
    if (exponent === 0) return `${code} ${sign}${group(digits)}`;
    const padded = digits.padStart(exponent + 1, '0');
    const whole = padded.slice(0, padded.length - exponent);
    const fraction = padded.slice(padded.length - exponent);
    return `${code} ${sign}${group(whole)}.${fraction}`;
  }

  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f');
  }

  // RFC 3339 instant to "YYYY-MM-DD HH:MM:SS.mmm" (UTC), as the hub reports days in UTC.
  function formatTime(value) {
    if (!value) return '';
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return String(value);
    return d.toISOString().replace('T', ' ').replace('Z', '');
  }

  function stateBadge(state) {
    return el('span', { class: `state state-${String(state).toLowerCase()}`, text: state });
  }

  // ---------------------------------------------------------------- credentials and API

  let credentials = loadCredentials();

  function loadCredentials() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null');
      return saved && typeof saved.user === 'string' ? saved : null;
    } catch (_) {
      return null;
    }
  }

  function saveCredentials(value) {
    credentials = value;
    try {
      if (value) sessionStorage.setItem(STORE_KEY, JSON.stringify(value));
      else sessionStorage.removeItem(STORE_KEY);
    } catch (_) {
      // Storage refused (private mode): memory only.
    }
  }

  // Basic credentials as UTF-8, base64 (btoa alone takes Latin-1 only).
  function basic(user, password) {
    const bytes = new TextEncoder().encode(`${user}:${password}`);
    let binary = '';
    for (const b of bytes) binary += String.fromCharCode(b);
    return `Basic ${btoa(binary)}`;
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // Calls the back office. `credentials: 'omit'` keeps the browser's own Basic-auth dialog
  // away on a 401: the page answers it with its own form.
  async function call(path, { method = 'GET', accept = 'application/json', as = credentials } = {}) {
    if (!as) throw new ApiError(401, 'Not signed in');
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers: { Authorization: basic(as.user, as.password), Accept: accept },
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'The hub does not answer');
    }
    if (response.ok) return response;
    let message = `${response.status} ${response.statusText}`;
    try {
      const detail = await response.json();
      if (detail && detail.errorMessage) {
        message = detail.errorMessage;
        const fields = detail.detailMessage && detail.detailMessage.formatErrors;
        if (Array.isArray(fields) && fields.length) {
          message += ': ' + fields.map((f) => `${f.field} ${f.msg}`).join('; ');
        }
      }
    } catch (_) {
      // Not JSON: keep the status line.
    }
    throw new ApiError(response.status, message);
  }

  async function getJson(path) {
    return (await call(path)).json();
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && String(v).trim() !== '') q.set(k, String(v).trim());
    }
    const text = q.toString();
    return text ? `?${text}` : '';
  }

  // Every failure of a view lands here: a 401 signs out, anything else is said in the status line.
  function failed(error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut('Your credentials were refused. Please sign in again.');
      return;
    }
    setStatus(error.message || String(error), true);
  }

  function setStatus(message, isError) {
    const status = $('status');
    status.textContent = message || '';
    status.classList.toggle('error', Boolean(isError));
  }

  // ---------------------------------------------------------------- sign in / out

  async function onLogin(event) {
    event.preventDefault();
    const user = $('login-user').value.trim();
    const password = $('login-password').value;
    const error = $('login-error');
    if (!user || !password) {
      error.textContent = 'Enter your operator id and password.';
      show(error, true);
      return;
    }
    const submit = $('login-submit');
    submit.disabled = true;
    try {
      await call('/summary', { as: { user, password } });
      saveCredentials({ user, password });
      $('login-password').value = '';
      show(error, false);
      enterApp();
    } catch (e) {
      error.textContent = e.status === 401
        ? 'Wrong operator id or password.'
        : `Cannot sign in: ${e.message}`;
      show(error, true);
      $('login-password').select();
    } finally {
      submit.disabled = false;
    }
  }

  function signOut(message) {
    saveCredentials(null);
    stopPolling();
    show($('app'), false);
    show($('who'), false);
    show($('login-view'), true);
    const error = $('login-error');
    error.textContent = message || '';
    show(error, Boolean(message));
    $('login-user').focus();
  }

  function enterApp() {
    $('who-name').textContent = credentials.user;
    show($('who'), true);
    show($('login-view'), false);
    show($('app'), true);
    setStatus('');
    showView('overview');
    startPolling();
  }

  // ---------------------------------------------------------------- views

  let currentView = 'overview';
  let lastListView = 'payments';

  function showView(name) {
    currentView = name;
    for (const view of document.querySelectorAll('.view')) {
      show(view, view.id === `${name}-view`);
    }
    for (const tab of document.querySelectorAll('.tab')) {
      const active = tab.dataset.view === name || (name === 'payment' && tab.dataset.view === lastListView);
      if (active) tab.setAttribute('aria-current', 'page');
      else tab.removeAttribute('aria-current');
    }
    if (name === 'overview') refreshSummary();
    if (name === 'outbox') loadOutbox();
    if (name === 'unadvised') loadUnadvised();
    if (name === 'partners') loadPartners();
    // Without a date the hub answers for its own today, by its settlement day definition
    // (time zone and cut-off), which the browser's clock cannot know.
    if (name === 'settlement' && !$('s-date').value) loadSettlement();
    if (name === 'payments' || name === 'outbox' || name === 'unadvised') lastListView = name;
  }

  // ---- overview: live counts

  let pollTimer = null;

  function startPolling() {
    stopPolling();
    pollTimer = setInterval(() => {
      if (!document.hidden) refreshSummary();
    }, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  async function refreshSummary() {
    if (!credentials) return;
    try {
      const summary = await getJson('/summary');
      renderSummary(summary);
    } catch (e) {
      failed(e);
    }
  }

  function renderSummary(summary) {
    $('overview-date').textContent = summary.date;
    $('overview-updated').textContent = `; last at ${new Date().toISOString().slice(11, 19)} UTC`;
    const payments = $('payment-counts');
    clear(payments);
    for (const { state, count } of summary.payments) {
      payments.append(el('li', {},
        el('button', {
          type: 'button',
          class: `count state-${state.toLowerCase()}`,
          title: `Search today's ${state} payments`,
          onclick: () => searchFor({ state, from: summary.date, to: summary.date }),
        }, el('span', { class: 'n', text: count }), el('span', { class: 'label', text: state }))));
    }
    const outbox = $('outbox-counts');
    clear(outbox);
    // DEAD (never delivered) and FAILED (refused by the partner) rows are open items: each
    // needs an operator, so both raise the alarm.
    let dead = 0;
    let refused = 0;
    for (const { state, count } of summary.outbox) {
      if (state === 'DEAD') dead = count;
      if (state === 'FAILED') refused = count;
      const open = (state === 'DEAD' || state === 'FAILED') && count > 0;
      outbox.append(el('li', {},
        el('button', {
          type: 'button',
          class: `count outbox-${state.toLowerCase()}${open ? ' alarm' : ''}`,
          title: `Show ${state} outbox rows`,
          onclick: () => { $('o-state').value = state; showView('outbox'); },
        }, el('span', { class: 'n', text: count }), el('span', { class: 'label', text: state }))));
    }
    $('outbox-oldest').textContent = summary.oldestPendingAt
      ? `Oldest pending advice queued at ${formatTime(summary.oldestPendingAt)}.`
      : 'No advice pending.';
    const badge = $('dead-badge');
    badge.textContent = [dead > 0 ? `${dead} dead` : '', refused > 0 ? `${refused} refused` : '']
      .filter(Boolean).join(' · ');
    show(badge, dead + refused > 0);
  }

  // ---- payment search

  let nextCursor = null;
  let lastSearch = {};

  function searchFor(filters) {
    const form = $('search-form');
    form.reset();
    $('q-state').value = filters.state || '';
    $('q-from').value = filters.from || '';
    $('q-to').value = filters.to || '';
    showView('payments');
    runSearch(false);
  }

  function searchParams() {
    return {
      tranId: $('q-tran').value,
      clientId: $('q-client').value,
      partnerId: $('q-partner').value,
      state: $('q-state').value,
      from: $('q-from').value,
      to: $('q-to').value,
    };
  }

  async function runSearch(more) {
    const params = more ? { ...lastSearch, after: nextCursor } : searchParams();
    if (!more) lastSearch = params;
    const button = more ? $('more') : $('search-submit');
    button.disabled = true;
    try {
      const page = await getJson(`/payments${query({ ...params, limit: 50 })}`);
      const body = $('results-body');
      if (!more) clear(body);
      for (const p of page.payments) body.append(paymentRow(p));
      nextCursor = page.next || null;
      show($('results'), body.children.length > 0);
      show($('results-empty'), body.children.length === 0);
      show($('more'), Boolean(nextCursor));
      const n = body.children.length;
      $('results-count').textContent = `${n} payment${n === 1 ? '' : 's'}${nextCursor ? ' shown, more available' : ''}.`;
      setStatus('');
    } catch (e) {
      failed(e);
    } finally {
      button.disabled = false;
    }
  }

  function paymentRow(p) {
    return el('tr', {},
      el('td', { text: formatTime(p.createdAt) }),
      el('td', {}, el('button', {
        type: 'button',
        class: 'link mono',
        'aria-label': `Open timeline of ${p.tranId}`,
        onclick: () => openPayment(p.id),
        text: p.tranId,
      })),
      el('td', { text: p.clientId }),
      el('td', { text: p.partnerId || '—' }),
      el('td', {}, stateBadge(p.state)),
      el('td', { class: 'num', text: formatMoney(p.amount.amount, p.amount.currency) }));
  }

  // ---- one payment: facts, timeline, outbox rows

  let openPaymentId = null;

  async function openPayment(id) {
    openPaymentId = id;
    try {
      const detail = await getJson(`/payments/${encodeURIComponent(id)}`);
      renderPayment(detail);
      showView('payment');
      $('payment-title').setAttribute('tabindex', '-1');
      $('payment-title').focus();
      setStatus('');
    } catch (e) {
      failed(e);
    }
  }

  function renderPayment(d) {
    $('p-tran').textContent = d.tranId;
    const state = $('p-state');
    state.textContent = d.state;
    state.className = `state state-${d.state.toLowerCase()}`;
    const facts = $('p-facts');
    clear(facts);
    const fact = (name, value) => {
      if (value === undefined || value === null || value === '') return;
      facts.append(el('div', {}, el('dt', { text: name }), el('dd', { text: value })));
    };
    fact('Payment id', d.id);
    fact('Amount', formatMoney(d.amount.amount, d.amount.currency));
    fact('Client', d.clientId);
    fact('POS message id', d.messageId);
    fact('Partner', d.partnerId);
    fact('Partner status', d.partnerStatus);
    fact('Partner payment token', d.partnerPaymentToken);
    fact('Created', formatTime(d.createdAt));
    fact('Scan deadline', formatTime(d.scanDeadline));
    fact('Updated', formatTime(d.updatedAt));
    fact('Reversed by POS', d.reversedByPos ? 'yes' : 'no');
    // A refused or dead advice leaves the payment unresolved whatever its state says (a
    // hub reversal the partner refused may mean a customer is still charged).
    fact('Open items', d.openItems > 0
      ? `${d.openItems} advice(s) refused or dead: see the outbox below, Retry once fixed`
      : undefined);

    const timeline = $('timeline-body');
    clear(timeline);
    for (const e of d.timeline) {
      const label = EVENT_LABELS[`${e.kind} ${e.direction}`] || e.kind;
      const body = e.body === undefined ? '' : el('details', {},
        el('summary', { text: e.messageId ? `${e.messageId}` : 'message' }),
        el('pre', { text: JSON.stringify(e.body, null, 2) }));
      timeline.append(el('tr', { class: `event dir-${e.direction.toLowerCase()}` },
        el('td', { class: 'mono', text: formatTime(e.at) }),
        el('td', {}, el('span', { class: 'event-label', text: label }), el('span', { class: 'kind', text: e.kind })),
        el('td', { class: 'dir', text: e.direction === 'IN' ? '← IN' : 'OUT →' }),
        el('td', { text: e.counterparty }),
        el('td', { class: 'num', text: e.httpStatus === undefined ? '' : e.httpStatus }),
        el('td', { class: 'outcome', text: e.outcome }),
        el('td', { class: 'mono small' }, body || (e.messageId || ''))));
    }

    const outbox = $('p-outbox-body');
    clear(outbox);
    for (const row of d.outbox) outbox.append(outboxRow(row, false));
    show($('p-outbox'), d.outbox.length > 0);
    show($('p-outbox-empty'), d.outbox.length === 0);
  }

  function lastResult(row) {
    const parts = [];
    if (row.lastStatus !== undefined) parts.push(`HTTP ${row.lastStatus}`);
    if (row.lastError) parts.push(row.lastError);
    return parts.join(': ') || '—';
  }

  function retryButton(row) {
    if (row.state !== 'DEAD' && row.state !== 'FAILED') return '';
    return el('button', {
      type: 'button',
      class: 'retry',
      'aria-label': `Retry ${row.kind} to ${row.partnerId} for payment ${row.paymentId}`,
      onclick: (event) => retry(row, event.currentTarget),
      text: 'Retry',
    });
  }

  function outboxRow(row, withPayment) {
    return el('tr', {},
      el('td', { class: 'mono', text: formatTime(row.createdAt) }),
      withPayment ? el('td', {}, el('button', {
        type: 'button',
        class: 'link mono',
        'aria-label': `Open payment ${row.paymentId}`,
        onclick: () => openPayment(row.paymentId),
        text: row.paymentId.slice(0, 8) + '…',
      })) : null,
      el('td', { text: row.kind }),
      el('td', { text: row.partnerId }),
      el('td', {}, el('span', { class: `state outbox-${row.state.toLowerCase()}`, text: row.state })),
      el('td', { class: 'num', text: row.attempts }),
      withPayment ? el('td', { class: 'mono', text: formatTime(row.expiresAt) }) : null,
      el('td', { class: 'small', text: lastResult(row) }),
      el('td', {}, retryButton(row)));
  }

  async function retry(row, button) {
    button.disabled = true;
    try {
      const done = await (await call(`/outbox/${encodeURIComponent(row.id)}/retry`, { method: 'POST' })).json();
      setStatus(`${row.kind} to ${row.partnerId} queued again (${done.state}), due now.`);
      if (currentView === 'payment' && openPaymentId) await openPayment(openPaymentId);
      else await loadOutbox();
      refreshSummary();
    } catch (e) {
      button.disabled = false;
      failed(e);
    }
  }

  // ---- outbox view

  async function loadOutbox() {
    try {
      const state = $('o-state').value;
      const list = await getJson(`/outbox${query({ state })}`);
      const body = $('outbox-body');
      clear(body);
      for (const row of list.outbox) body.append(outboxRow(row, true));
      show($('outbox-table'), list.outbox.length > 0);
      show($('outbox-empty'), list.outbox.length === 0);
    } catch (e) {
      failed(e);
    }
  }

  // ---- approvals nobody advised

  // "3 h 05 min", "12 min", "40 s": how long the approval has waited for its advice.
  function formatAge(seconds) {
    if (seconds >= 3600) {
      return `${Math.floor(seconds / 3600)} h ${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')} min`;
    }
    if (seconds >= 60) return `${Math.floor(seconds / 60)} min`;
    return `${seconds} s`;
  }

  async function loadUnadvised() {
    try {
      const list = await getJson('/unadvised');
      $('unadvised-after').textContent = ` for more than ${formatAge(list.listedAfterSeconds)}`;
      const body = $('unadvised-body');
      clear(body);
      for (const p of list.payments) {
        body.append(el('tr', {},
          el('td', { text: formatTime(p.approvedAt) }),
          el('td', { class: 'num', text: formatAge(p.ageSeconds) }),
          el('td', {}, el('button', {
            type: 'button',
            class: 'link mono',
            'aria-label': `Open timeline of ${p.tranId}`,
            onclick: () => openPayment(p.id),
            text: p.tranId,
          })),
          el('td', { text: p.clientId }),
          el('td', { text: p.partnerId || '—' }),
          el('td', { class: 'num', text: formatMoney(p.amount.amount, p.amount.currency) }),
          el('td', { text: p.reverseAt ? `reverse at ${formatTime(p.reverseAt)}` : 'nothing (POS advises)' })));
      }
      show($('unadvised-table'), list.payments.length > 0);
      show($('unadvised-empty'), list.payments.length === 0);
      const badge = $('unadvised-badge');
      badge.textContent = String(list.count);
      show(badge, list.count > 0);
    } catch (e) {
      failed(e);
    }
  }

  // ---- partners: health over the last hour

  function percent(rate) {
    return rate === undefined ? '—' : `${(rate * 100).toFixed(1)} %`;
  }

  function millis(ms) {
    if (ms === undefined) return '—';
    return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
  }

  async function loadPartners() {
    try {
      const health = await getJson('/partners/health');
      $('partners-updated').textContent = `; as of ${formatTime(health.generatedAt)}`;
      const body = $('partners-body');
      clear(body);
      const charts = $('partner-charts');
      clear(charts);
      for (const p of health.partners) {
        const name = p.configured ? `${p.partnerId} (${p.name})` : `${p.partnerId} (no longer configured)`;
        const error = p.lastError
          ? `${formatTime(p.lastError.at)} ${p.lastError.operation}: ${p.lastError.error}`
          : '—';
        body.append(el('tr', { class: p.configured ? '' : 'warn' },
          el('th', { scope: 'row', text: name }),
          el('td', { class: 'num', text: String(p.payCalls) }),
          el('td', { class: 'num', text: percent(p.approvalRate) }),
          el('td', { class: 'num', text: percent(p.unknownRate) }),
          el('td', { class: 'num', text: millis(p.latencyP50Ms) }),
          el('td', { class: 'num', text: millis(p.latencyP99Ms) }),
          el('td', { class: 'num', text: String(p.advicesWaiting) }),
          el('td', { class: 'num', text: p.oldestAdviceWaitingSeconds === undefined ? '—' : formatAge(p.oldestAdviceWaitingSeconds) }),
          el('td', { text: error })));
        charts.append(partnerChart(p));
      }
      show($('partners-table'), health.partners.length > 0);
      show($('partners-empty'), health.partners.length === 0);
      setStatus('');
    } catch (e) {
      failed(e);
    }
  }

  // Pay calls per minute over the hour, one stacked bar a minute: approved at the bottom,
  // unknown outcomes on top of them, the rest (declined, not sent) above.
  function partnerChart(p) {
    const minutes = p.callsPerMinute.length;
    const slot = 8, top = 24, plot = 120, bottom = 40, left = 34;
    const width = left + minutes * slot + 10;
    const height = top + plot + bottom;
    const max = Math.max(1, ...p.callsPerMinute);
    const id = `partner-chart-${p.partnerId}`.replace(/[^A-Za-z0-9-]/g, '');
    const root = svg('svg', {
      class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`,
      role: 'img', 'aria-labelledby': `${id}-title ${id}-desc`,
    });
    root.append(svg('title', { id: `${id}-title`, text: `${p.partnerId}: pay calls per minute over the last hour` }));
    root.append(svg('desc', {
      id: `${id}-desc`,
      text: `${p.payCalls} calls, ${p.approved} approved, ${p.unknown} unknown, ${p.failed + p.notSent} declined, not processed or not sent`,
    }));
    root.append(svg('line', { class: 'axis', x1: left, x2: width - 5, y1: top + plot, y2: top + plot }));
    root.append(svg('text', { class: 'value', x: left - 4, y: top + 4, 'text-anchor': 'end', text: String(max) }));
    root.append(svg('text', { class: 'value', x: left - 4, y: top + plot, 'text-anchor': 'end', text: '0' }));
    const scale = (n) => (n / max) * plot;
    for (let i = 0; i < minutes; i += 1) {
      const calls = p.callsPerMinute[i];
      if (!calls) continue;
      const approved = p.approvedPerMinute[i];
      const unknown = p.unknownPerMinute[i];
      const other = calls - approved - unknown;
      const x = left + i * slot + 1;
      let y = top + plot;
      for (const [count, key] of [[approved, 'approved'], [unknown, 'unknown'], [other, 'other']]) {
        if (!count) continue;
        const h = Math.max(1, scale(count));
        y -= h;
        root.append(svg('rect', { class: `bar bar-${key}`, x, y, width: slot - 2, height: h },
          svg('title', { text: `${minutes - 1 - i} min ago: ${count} ${key}` })));
      }
    }
    root.append(svg('text', { class: 'partner', x: left, y: top + plot + 16, text: '60 min ago' }));
    root.append(svg('text', { class: 'partner', x: width - 5, y: top + plot + 16, 'text-anchor': 'end', text: 'now' }));
    const legend = svg('g', { class: 'legend' });
    [['approved', 'Approved'], ['unknown', 'Unknown (reversed)'], ['other', 'Declined, not sent']].forEach(([key, label], j) => {
      const x = left + j * 150;
      legend.append(svg('rect', { class: `bar bar-${key}`, x, y: height - 14, width: 10, height: 10 }));
      legend.append(svg('text', { x: x + 14, y: height - 5, text: label }));
    });
    root.append(legend);
    return el('figure', { class: 'card chart-card' }, root,
      el('figcaption', { text: `${p.partnerId}: ${p.payCalls} pay calls, approval ${percent(p.approvalRate)}, unknown ${percent(p.unknownRate)}, p99 ${millis(p.latencyP99Ms)}` }));
  }

  // ---- settlement: table, chart, CSV

  async function loadSettlement() {
    const params = { date: $('s-date').value, partnerId: $('s-partner').value };
    try {
      const report = await getJson(`/reports/settlement${query(params)}`);
      renderSettlement(report);
      setStatus('');
    } catch (e) {
      failed(e);
    }
  }

  // Count and gross, and where fees were charged (confirmed payments) the fees and the net
  // the partner's merchant is paid.
  function tally(t, currency) {
    const gross = `${t.count} · ${formatMoney(t.amount, currency)}`;
    return t.fees > 0
      ? `${gross} (fees ${formatMoney(t.fees, currency)}, net ${formatMoney(t.net, currency)})`
      : gross;
  }

  // Which day this is: the hub's zone and cut-off, and the instants it covers.
  function dayRuleText(report) {
    const midnight = report.cutOff === '00:00';
    const rule = midnight
      ? `days end at midnight in ${report.timeZone}`
      : `days end at ${report.cutOff} in ${report.timeZone}; a payment at or after ${report.cutOff} counts on the next day`;
    return `Settlement day ${report.date} (${rule}): payments created from ${formatTime(report.from)} to ${formatTime(report.to)} UTC.`;
  }

  function renderSettlement(report) {
    if (!$('s-date').value) $('s-date').value = report.date;
    $('s-day-rule').textContent = dayRuleText(report);
    const body = $('settlement-body');
    clear(body);
    for (const r of report.rows) {
      body.append(el('tr', {},
        el('th', { scope: 'row', text: r.partnerId }),
        el('td', { text: (currencyOf(r.currency) || [r.currency])[0] }),
        el('td', { class: 'num', text: tally(r.confirmed, r.currency) }),
        el('td', { class: 'num', text: tally(r.reversed, r.currency) }),
        el('td', { class: 'num', text: tally(r.unknown, r.currency) }),
        el('td', { class: 'num', text: tally(r.approved, r.currency) })));
    }
    show($('settlement-table'), report.rows.length > 0);
    show($('settlement-empty'), report.rows.length === 0);
    renderCharts(report);
  }

  // One bar chart per currency (amounts in different currencies share no scale): for each
  // partner, a bar of the confirmed and one of the reversed amount. The bar heights are
  // geometry only; every amount shown as text is formatted from the integer.
  function renderCharts(report) {
    const charts = $('charts');
    clear(charts);
    const byCurrency = new Map();
    for (const r of report.rows) {
      if (!byCurrency.has(r.currency)) byCurrency.set(r.currency, []);
      byCurrency.get(r.currency).push(r);
    }
    for (const [currency, rows] of byCurrency) {
      charts.append(chart(report, currency, rows));
    }
  }

  function chart(report, currency, rows) {
    const date = report.date;
    const code = (currencyOf(currency) || [currency])[0];
    const series = [['confirmed', 'Confirmed'], ['reversed', 'Reversed']];
    const bar = 34, gap = 10, groupGap = 44, top = 28, plot = 180, bottom = 46, left = 16;
    const groupWidth = series.length * bar + (series.length - 1) * gap;
    const width = Math.max(280, left * 2 + rows.length * groupWidth + (rows.length - 1) * groupGap);
    const height = top + plot + bottom;
    const max = Math.max(1, ...rows.flatMap((r) => series.map(([k]) => Number(r[k].amount))));
    const id = `chart-${code}-${date}`.replace(/[^A-Za-z0-9-]/g, '');

    const root = svg('svg', {
      class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`,
      role: 'img', 'aria-labelledby': `${id}-title ${id}-desc`,
    });
    root.append(svg('title', { id: `${id}-title`, text: `Settlement ${date} in ${code}: confirmed and reversed amounts per partner` }));
    root.append(svg('desc', {
      id: `${id}-desc`,
      text: rows.map((r) => `${r.partnerId}: confirmed ${formatMoney(r.confirmed.amount, currency)}, reversed ${formatMoney(r.reversed.amount, currency)}`).join('; '),
    }));
    root.append(svg('line', { class: 'axis', x1: left / 2, x2: width - left / 2, y1: top + plot, y2: top + plot }));
    rows.forEach((r, i) => {
      const x0 = left + i * (groupWidth + groupGap);
      series.forEach(([key], j) => {
        const amount = Number(r[key].amount);
        const h = amount > 0 ? Math.max(2, Math.round((amount / max) * plot)) : 0;
        const x = x0 + j * (bar + gap);
        const y = top + plot - h;
        root.append(svg('rect', { class: `bar bar-${key}`, x, y, width: bar, height: h },
          svg('title', { text: `${r.partnerId} ${key}: ${r[key].count} payments, ${formatMoney(r[key].amount, currency)}` })));
        root.append(svg('text', { class: 'value', x: x + bar / 2, y: y - 6, 'text-anchor': 'middle', text: formatMoney(r[key].amount, currency).replace(`${code} `, '') }));
      });
      root.append(svg('text', { class: 'partner', x: x0 + groupWidth / 2, y: top + plot + 18, 'text-anchor': 'middle', text: r.partnerId }));
    });
    const legend = svg('g', { class: 'legend' });
    series.forEach(([key, label], j) => {
      const x = left + j * 120;
      legend.append(svg('rect', { class: `bar bar-${key}`, x, y: height - 18, width: 12, height: 12 }));
      legend.append(svg('text', { x: x + 18, y: height - 8, text: label }));
    });
    root.append(legend);
    return el('figure', { class: 'card chart-card' }, root,
      el('figcaption', { text: `${code}, settlement day ${date} (${report.timeZone}, cut-off ${report.cutOff}): amounts in ${code}` }));
  }

  async function downloadCsv() {
    const params = { date: $('s-date').value, partnerId: $('s-partner').value, format: 'csv' };
    try {
      const response = await call(`/reports/settlement${query(params)}`, { accept: 'text/csv' });
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const name = `settlement-${params.date || 'today'}.csv`;
      const link = el('a', { href: url, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      setStatus(`${name} downloaded.`);
    } catch (e) {
      failed(e);
    }
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    const stateSelect = $('q-state');
    for (const state of PAYMENT_STATES) stateSelect.append(el('option', { value: state, text: state }));

    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', () => signOut('Signed out.'));
    for (const tab of document.querySelectorAll('.tab')) {
      tab.addEventListener('click', () => showView(tab.dataset.view));
    }
    $('search-form').addEventListener('submit', (e) => { e.preventDefault(); runSearch(false); });
    $('more').addEventListener('click', () => runSearch(true));
    $('back').addEventListener('click', () => showView(lastListView));
    $('outbox-form').addEventListener('submit', (e) => { e.preventDefault(); loadOutbox(); });
    $('settlement-form').addEventListener('submit', (e) => { e.preventDefault(); loadSettlement(); });
    $('s-csv').addEventListener('click', downloadCsv);

    if (credentials) enterApp();
    else {
      show($('login-view'), true);
      $('login-user').focus();
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
}());
