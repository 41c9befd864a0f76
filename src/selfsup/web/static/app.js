/* selfsup web app: live run states and logs, local times, keyboard shortcuts.
 *
 * Plain JavaScript, no framework and no build step. Pages say what they are in
 * <body data-page="...">; data comes from data- attributes (no inline scripts, so the pages
 * run under a strict Content-Security-Policy). Polling stops once every run shown is final
 * and backs off when the server does not answer.
 */
'use strict';

(function () {
  const POLL_MS = 2000;
  const MAX_BACKOFF_MS = 30000;
  const HIDDEN_POLL_MS = 10000;

  /** GET or POST JSON on this origin; a lost session sends the browser to the login. */
  async function fetchJSON(url, options) {
    const response = await fetch(url, Object.assign({
      credentials: 'same-origin',
      headers: {Accept: 'application/json'},
    }, options || {}));
    if (response.status === 401) {
      const next = window.location.pathname + window.location.search;
      window.location.assign('/login?next=' + encodeURIComponent(next));
      throw new Error('not logged in');
    }
    if (!response.ok) {
      let message = response.status + ' ' + response.statusText;
      try {
        const body = await response.json();
        if (body && body.error) {
          message = body.error;
        }
      } catch (_ignored) {
        // The body was not JSON; the status line says enough.
      }
      throw new Error(message);
    }
    return response.json();
  }

  /**
   * Call `step` repeatedly: it resolves to the delay before the next call in ms, or to a
   * negative number to stop. Failures retry with a doubling delay (at most 30 s); a hidden
   * tab polls slowly.
   */
  function poll(step) {
    let failures = 0;
    async function tick() {
      let delay;
      try {
        delay = await step();
        failures = 0;
      } catch (err) {
        failures += 1;
        delay = Math.min(POLL_MS * Math.pow(2, failures), MAX_BACKOFF_MS);
        console.warn('selfsup: polling failed, retrying in ' + delay / 1000 + ' s:', err.message);
      }
      if (delay < 0) {
        return;
      }
      if (document.hidden) {
        delay = Math.max(delay, HIDDEN_POLL_MS);
      }
      window.setTimeout(tick, delay);
    }
    tick();
  }

  function formatTime(ms) {
    const date = new Date(Number(ms));
    return date.toLocaleString(undefined, {
      year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
    });
  }

  /** Show <time data-ts> in the browser's time zone (the server renders UTC). */
  function localizeTimes(root) {
    root.querySelectorAll('time[data-ts]').forEach(function (el) {
      el.title = el.getAttribute('datetime') || '';
      el.textContent = formatTime(el.dataset.ts);
    });
  }

  function setTime(cell, ms) {
    if (!cell) {
      return;
    }
    cell.textContent = '';
    if (ms === null || ms === undefined) {
      const dash = document.createElement('span');
      dash.className = 'muted';
      dash.textContent = '—';
      cell.append(dash);
      return;
    }
    const time = document.createElement('time');
    time.dateTime = new Date(ms).toISOString();
    time.dataset.ts = String(ms);
    time.title = time.dateTime;
    time.textContent = formatTime(ms);
    cell.append(time);
  }

  /** Update a state pill in place: text, colour family, raw state. */
  function setState(pill, run) {
    if (!pill) {
      return;
    }
    pill.textContent = run.state;
    pill.dataset.state = run.state;
    pill.className = pill.className.replace(/\btone-\w+/g, '').trim() + ' tone-' + run.tone;
  }

  function runLinks(runId) {
    const base = '/runs/' + encodeURIComponent(runId);
    const fragment = document.createDocumentFragment();
    const images = document.createElement('a');
    images.href = base + '/images';
    images.textContent = 'Images';
    const map = document.createElement('a');
    map.href = base + '/map';
    map.textContent = 'Map';
    fragment.append(images, ' · ', map);
    return fragment;
  }

  // ---------------------------------------------------------------- runs list

  function initIndex() {
    const rows = new Map();
    document.querySelectorAll('[data-testid="run-row"]').forEach(function (row) {
      rows.set(row.dataset.runId, row);
    });
    const pending = function () {
      return Array.from(rows.values()).some(function (row) {
        return row.dataset.final !== 'true';
      });
    };
    if (!pending()) {
      return;
    }
    poll(async function () {
      const data = await fetchJSON('/ui-api/runs');
      data.runs.forEach(function (run) {
        const row = rows.get(run.id);
        if (!row) {
          return;
        }
        setState(row.querySelector('[data-testid="run-state"]'), run);
        const message = row.querySelector('[data-testid="run-message"]');
        if (message && message.textContent !== run.message) {
          message.textContent = run.message;
        }
        if (run.is_final && row.dataset.final !== 'true') {
          setTime(row.querySelector('[data-testid="run-ended"]'), run.ended_at);
        }
        if (run.has_outputs && row.dataset.hasOutputs !== 'true') {
          row.dataset.hasOutputs = 'true';
          const cell = row.lastElementChild;
          if (cell) {
            cell.textContent = '';
            cell.append(runLinks(run.id));
          }
        }
        row.dataset.final = run.is_final ? 'true' : 'false';
      });
      return pending() ? POLL_MS : -1;
    });
  }

  // ---------------------------------------------------------------- one run

  function initRun() {
    const body = document.body;
    const runId = body.dataset.runId;
    const log = document.querySelector('[data-testid="run-log"]');
    const pill = document.querySelector('.page-head [data-testid="run-state"]');
    const message = document.querySelector('[data-testid="run-message"]');
    const renderedFinal = body.dataset.final === 'true';
    const hasReport = body.dataset.hasReport === 'true';
    let offset = Number(body.dataset.logOffset || '0');
    if (log) {
      log.scrollTop = log.scrollHeight;
    }
    const url = '/ui-api/runs/' + encodeURIComponent(runId) + '/log?offset=';

    poll(async function () {
      const data = await fetchJSON(url + offset);
      if (log && data.text) {
        // Follow the end of the log unless the reader scrolled up to read something.
        const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 32;
        log.append(document.createTextNode(data.text));
        if (atBottom) {
          log.scrollTop = log.scrollHeight;
        }
      }
      offset = data.offset;
      const run = data.run;
      setState(pill, run);
      if (message && run.message && message.textContent !== run.message) {
        message.textContent = run.message;
      }
      if (data.text) {
        return 100; // more may be waiting: catch up before slowing down
      }
      if (run.is_final) {
        if (!renderedFinal && !hasReport) {
          // The run ended while the page was open: reload once to show its report. The
          // reloaded page is rendered final, so it never polls (or reloads) again.
          setTime(document.querySelector('[data-testid="run-ended"]'), run.ended_at);
          window.location.reload();
        }
        return -1;
      }
      return POLL_MS;
    });
  }

  // ---------------------------------------------------------------- grid and sample

  function isTyping(event) {
    const target = event.target;
    return target instanceof HTMLElement &&
      (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function initImages() {
    const search = document.querySelector('[data-testid="search-input"]');
    document.addEventListener('keydown', function (event) {
      if (event.key === '/' && search && !isTyping(event)) {
        event.preventDefault();
        search.focus();
        search.select();
      }
    });
  }

  function initImage() {
    document.addEventListener('keydown', function (event) {
      if (isTyping(event) || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) {
        return;
      }
      const rel = event.key === 'ArrowLeft' ? 'prev' : event.key === 'ArrowRight' ? 'next' : null;
      const link = rel && document.querySelector('.prevnext a[rel="' + rel + '"]');
      if (link) {
        event.preventDefault();
        window.location.assign(link.href);
      }
    });
  }

  // map.js loads its data through the same fetch (the 401 -> login redirect included).
  window.selfsup = {fetchJSON: fetchJSON};

  document.addEventListener('DOMContentLoaded', function () {
    localizeTimes(document);
    const page = document.body.dataset.page;
    if (page === 'index') {
      initIndex();
    } else if (page === 'run') {
      initRun();
    } else if (page === 'images') {
      initImages();
    } else if (page === 'image') {
      initImage();
    }
  });
})();
