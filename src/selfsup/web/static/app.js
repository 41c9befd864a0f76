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
    initGridSelection();
  }

  // ---------------------------------------------------------------- tags and exports

  const TAG_CHUNK = 10000; // most indices per POST (the server's limit)

  async function postJSON(url, body) {
    return fetchJSON(url, {
      method: 'POST',
      headers: {'Content-Type': 'application/json', Accept: 'application/json'},
      body: JSON.stringify(body),
    });
  }

  /** Download the export of `indices` as `format`: a POST, so a selection of any size. */
  async function downloadExport(url, indices, format) {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({indices: indices, format: format}),
    });
    if (!response.ok) {
      let message = response.status + ' ' + response.statusText;
      try {
        const body = await response.json();
        if (body && body.error) {
          message = body.error;
        }
      } catch (_ignored) {
        // Not JSON: the status line says enough.
      }
      throw new Error(message);
    }
    const blob = await response.blob();
    const match = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') || '');
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = match ? match[1] : 'selection';
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(function () {
      URL.revokeObjectURL(link.href);
    }, 60000);
  }

  /**
   * Wire a tag bar (data-testid="tagbar": tag name input, Tag/Untag/Export buttons, export
   * format) to a selection: `selected()` gives its sample indices. `onTags(tags)` receives
   * the run's tags ([{name, count}]) after each change. Returns {refresh}: call it when the
   * selection changes.
   */
  function initTagBar(bar, selected, onTags) {
    const input = bar.querySelector('[data-testid="tag-input"]');
    const note = bar.querySelector('[data-role="tag-note"]');
    const format = bar.querySelector('[data-testid="export-format"]');
    const buttons = Array.from(bar.querySelectorAll('button[data-action="tag"], ' +
      'button[data-action="untag"], button[data-action="export"]'));

    function refresh() {
      const none = selected().length === 0;
      for (const button of buttons) {
        button.disabled = none;
      }
    }

    async function change(action) {
      const tag = input.value.trim();
      if (!tag) {
        note.textContent = 'Type a tag name first.';
        input.focus();
        return;
      }
      const indices = selected();
      const url = action === 'tag' ? bar.dataset.tagUrl : bar.dataset.untagUrl;
      let changed = 0;
      let tags = null;
      try {
        for (let k = 0; k < indices.length; k += TAG_CHUNK) {
          const data = await postJSON(url, {tag: tag, indices: indices.slice(k, k + TAG_CHUNK)});
          changed += data.changed;
          tags = data.tags;
        }
      } catch (err) {
        note.textContent = 'Could not ' + action + ': ' + err.message;
        return;
      }
      note.textContent = (action === 'tag' ? 'Tagged ' : 'Untagged ') +
        changed.toLocaleString() + ' of ' + indices.length.toLocaleString() + ' with #' + tag + '.';
      note.dataset.done = String(Date.now());
      if (tags && onTags) {
        onTags(tags);
      }
    }

    async function exportSelection() {
      try {
        await downloadExport(bar.dataset.exportUrl, selected(), format.value);
        note.textContent = 'Exported ' + selected().length.toLocaleString() + ' samples.';
      } catch (err) {
        note.textContent = 'Could not export: ' + err.message;
      }
    }

    for (const button of buttons) {
      button.addEventListener('click', function () {
        if (button.dataset.action === 'export') {
          exportSelection();
        } else {
          change(button.dataset.action);
        }
      });
    }
    input.addEventListener('keydown', function (event) {
      if (event.key === 'Enter' && selected().length > 0) {
        event.preventDefault();
        change('tag');
      }
    });
    refresh();
    return {refresh: refresh};
  }

  /** Rebuild the grid's tag filter and the tag name suggestions from [{name, count}]. */
  function showTags(tags) {
    const list = document.querySelector('[data-testid="tag-filter"]');
    const datalist = document.getElementById('known-tags');
    if (!list) {
      return;
    }
    const active = new URLSearchParams(window.location.search).get('tag');
    list.querySelectorAll('[data-testid="tag-filter-item"]').forEach(function (item) {
      item.parentElement.remove();
    });
    if (datalist) {
      datalist.textContent = '';
    }
    for (const tag of tags) {
      const params = new URLSearchParams(window.location.search);
      params.set('tag', tag.name);
      params.delete('page');
      const link = document.createElement('a');
      link.className = 'legend-item';
      link.href = window.location.pathname + '?' + params.toString();
      link.dataset.testid = 'tag-filter-item';
      link.dataset.tag = tag.name;
      link.dataset.count = String(tag.count);
      if (tag.name === active) {
        link.setAttribute('aria-current', 'page');
      }
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = tag.count.toLocaleString();
      link.append('#' + tag.name + ' ', count);
      const li = document.createElement('li');
      li.append(link);
      list.append(li);
      if (datalist) {
        const option = document.createElement('option');
        option.value = tag.name;
        datalist.append(option);
      }
    }
  }

  /** Select mode of the grid: a click on a tile selects it instead of opening it. */
  function initGridSelection() {
    const bar = document.querySelector('[data-testid="tagbar"]');
    const modeButton = document.querySelector('[data-testid="select-mode"]');
    const countEl = document.querySelector('[data-testid="grid-selection-count"]');
    const grid = document.querySelector('[data-testid="grid"]');
    if (!bar || !modeButton) {
      return;
    }
    const chosen = new Set();
    const selected = function () {
      return Array.from(chosen).sort(function (a, b) {
        return a - b;
      });
    };
    const tagBar = initTagBar(bar, selected, showTags);
    modeButton.addEventListener('click', function () {
      const on = modeButton.getAttribute('aria-pressed') !== 'true';
      modeButton.setAttribute('aria-pressed', on ? 'true' : 'false');
      if (grid) {
        grid.classList.toggle('selecting', on);
      }
    });
    if (!grid) {
      return;
    }
    grid.addEventListener('click', function (event) {
      const tile = event.target instanceof Element && event.target.closest('[data-testid="tile"]');
      const selecting = modeButton.getAttribute('aria-pressed') === 'true';
      if (!tile || !selecting) {
        return;
      }
      event.preventDefault();
      const index = Number(tile.dataset.index);
      if (chosen.has(index)) {
        chosen.delete(index);
        tile.removeAttribute('aria-selected');
      } else {
        chosen.add(index);
        tile.setAttribute('aria-selected', 'true');
      }
      countEl.textContent = chosen.size.toLocaleString();
      tagBar.refresh();
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

  // map.js loads its data through the same fetch (the 401 -> login redirect included) and
  // tags its selection with the same tag bar.
  window.selfsup = {fetchJSON: fetchJSON, initTagBar: initTagBar};

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
