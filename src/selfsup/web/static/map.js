/* selfsup embedding map: a <canvas> scatter of a run's 2-D projection.
 *
 * Points are coloured by status (colours from the CSS custom properties --status-*, shared
 * with the grid's badges and the legend). Wheel zooms around the cursor, dragging pans, and
 * hovering shows the nearest point within 6 px: a uniform grid over the data coordinates,
 * built once, answers that from a few cells, so 100,000 points stay smooth. The box and lasso
 * tools select points (Shift adds); the side panel lists the first 500 selected files.
 *
 * The "Colour by" box recolours the points by another signal of the run (label, quality issue,
 * near-duplicate group, a tag, or any numeric score, from /ui-api/runs/{id}/colour): categories
 * get a palette, numbers a continuous scale (64 steps from low to high; grey: no value).
 * Status stays what the legend's buttons show and hide.
 *
 * For browser tests: window.selfsupMap = {ready, points, toCanvas(sampleIndex) -> {x, y} in
 * CSS pixels relative to the canvas (null if the sample is not on the map), selected() ->
 * sample indices, setTool(name), colouredBy() -> the signal the points show}.
 */
'use strict';

(function () {
  const HOVER_PX = 6;
  const LIST_LIMIT = 500;
  const CHUNK = 10000; // most indices per POST /samples
  const PAD_PX = 24;
  const MIN_ZOOM = 0.5;
  const MAX_ZOOM = 500;
  // Drawn first to last: the many removed points below, the selected ones on top.
  const DRAW_ORDER = ['removed', 'duplicate', 'corrupt', 'selected'];

  const api = {
    ready: false,
    points: 0,
    toCanvas: function () {
      return null;
    },
    selected: function () {
      return [];
    },
    setTool: function () {},
    colouredBy: function () {
      return 'status';
    },
  };
  // Categorical palette (colour-blind friendly, Okabe-Ito first) and the numeric ramp's stops
  // (viridis at 0, 0.25, 0.5, 0.75, 1), interpolated in RGB.
  const PALETTE = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#56b4e9', '#d55e00', '#f0e442',
    '#000000', '#7f3c8d', '#11a579', '#3969ac', '#f2b701', '#e73f74', '#80ba5a'];
  const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const RAMP_STEPS = 64;
  const NO_VALUE = '#c5cbd3';

  function rampColour(t) {
    const x = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1);
    const k = Math.min(Math.floor(x), RAMP.length - 2);
    const f = x - k;
    const c = RAMP[k].map(function (v, j) {
      return Math.round(v + (RAMP[k + 1][j] - v) * f);
    });
    return 'rgb(' + c.join(',') + ')';
  }
  window.selfsupMap = api;

  document.addEventListener('DOMContentLoaded', init);

  function init() {
    const frame = document.getElementById('map');
    if (!frame) {
      return;
    }
    const canvas = frame.querySelector('canvas');
    const ctx = canvas.getContext('2d');
    const statusBox = frame.querySelector('[data-role="status"]');
    const tooltip = frame.querySelector('[data-testid="map-tooltip"]');
    const tipImg = tooltip.querySelector('[data-role="tooltip-img"]');
    const tipName = tooltip.querySelector('[data-role="tooltip-name"]');
    const tipStatus = tooltip.querySelector('[data-role="tooltip-status"]');
    const description = document.querySelector('[data-role="description"]');
    const countEl = document.querySelector('[data-testid="map-selection-count"]');
    const listEl = document.querySelector('[data-role="selection-list"]');
    const noteEl = document.querySelector('[data-role="selection-note"]');
    const copyBtn = document.querySelector('[data-action="copy"]');
    const tagBarEl = document.querySelector('[data-testid="tagbar"]');
    let tagBar = null; // wired once the points are loaded
    const clearBtn = document.querySelector('[data-action="clear"]');
    const toolButtons = Array.from(document.querySelectorAll('button[data-tool]'));
    const legendButtons = Array.from(document.querySelectorAll('button.legend-item[data-status]'));

    const STATUSES = frame.dataset.statuses.split(',');
    const rootStyle = getComputedStyle(document.documentElement);
    const colours = STATUSES.map(function (s) {
      return rootStyle.getPropertyValue('--status-' + s).trim() || '#888';
    });
    const order = DRAW_ORDER.map(function (s) {
      return STATUSES.indexOf(s);
    }).filter(function (i) {
      return i >= 0;
    });

    // Data, filled by load(): sample index, coordinates and status code per point.
    let n = 0;
    let xs = new Float32Array(0);
    let ys = new Float32Array(0);
    let codes = new Uint8Array(0);
    let sampleIndex = new Int32Array(0);
    const pointOf = new Map(); // sample index -> point
    let byStatus = []; // status code -> Int32Array of points
    let minX = 0;
    let maxX = 1;
    let minY = 0;
    let maxY = 1;

    // Uniform grid over the data bounds: points of cell c are cellItems[cellStart[c]..cellStart[c+1]).
    let gx = 1;
    let gy = 1;
    let cellW = 1;
    let cellH = 1;
    let cellStart = new Int32Array(2);
    let cellItems = new Int32Array(0);

    // View: screen = (data - centre) * scale + half size, y pointing up.
    let cssW = 1;
    let cssH = 1;
    let dpr = 1;
    let cx = 0;
    let cy = 0;
    let scale = 1;
    let fitScale = 1;
    let fitted = false;

    const visible = STATUSES.map(function () {
      return true;
    });
    let selectedMask = new Uint8Array(0);
    let nSelected = 0;
    let tool = 'pan';
    let drag = null;
    let hover = -1;
    let drawPending = false;
    const names = new Map(); // sample index -> {filename, status}
    let listRequest = 0;
    // Colour by another signal: null = by status, else [{colour, points: Int32Array}] drawn
    // in order (points without a value first, so that they stay underneath).
    let colourGroups = null;
    let colouredBy = 'status';
    const colourSelect = document.querySelector('[data-testid="colour-by"]');
    const colourLegend = document.querySelector('[data-testid="colour-legend"]');

    // ------------------------------------------------------------ geometry

    function sx(i) {
      return (xs[i] - cx) * scale + cssW / 2;
    }

    function sy(i) {
      return cssH / 2 - (ys[i] - cy) * scale;
    }

    function toData(px, py) {
      return {x: (px - cssW / 2) / scale + cx, y: (cssH / 2 - py) / scale + cy};
    }

    function fit() {
      const w = Math.max(maxX - minX, 1e-9);
      const h = Math.max(maxY - minY, 1e-9);
      fitScale = Math.max(1e-9, Math.min((cssW - 2 * PAD_PX) / w, (cssH - 2 * PAD_PX) / h));
      scale = fitScale;
      cx = (minX + maxX) / 2;
      cy = (minY + maxY) / 2;
    }

    function resize() {
      const rect = canvas.getBoundingClientRect();
      cssW = Math.max(1, rect.width);
      cssH = Math.max(1, rect.height);
      dpr = window.devicePixelRatio || 1;
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
      if (!fitted && n > 0) {
        fit();
        fitted = true;
      } else if (n > 0 && scale === fitScale) {
        fit();
      }
      requestDraw(true);
    }

    function buildGrid() {
      const w = Math.max(maxX - minX, 1e-9);
      const h = Math.max(maxY - minY, 1e-9);
      // About four points per cell on average; square-ish cells, at most 1024 per axis.
      const cell = Math.sqrt((w * h) / Math.max(1, n / 4));
      gx = Math.min(1024, Math.max(1, Math.ceil(w / cell)));
      gy = Math.min(1024, Math.max(1, Math.ceil(h / cell)));
      cellW = w / gx;
      cellH = h / gy;
      const counts = new Int32Array(gx * gy + 1);
      const cellOf = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const c = cellIndex(xs[i], ys[i]);
        cellOf[i] = c;
        counts[c + 1] += 1;
      }
      for (let c = 0; c < gx * gy; c++) {
        counts[c + 1] += counts[c];
      }
      cellStart = counts;
      cellItems = new Int32Array(n);
      const cursor = counts.slice(0, gx * gy);
      for (let i = 0; i < n; i++) {
        cellItems[cursor[cellOf[i]]++] = i;
      }
    }

    function cellCol(x) {
      return Math.min(gx - 1, Math.max(0, Math.floor((x - minX) / cellW)));
    }

    function cellRow(y) {
      return Math.min(gy - 1, Math.max(0, Math.floor((y - minY) / cellH)));
    }

    function cellIndex(x, y) {
      return cellRow(y) * gx + cellCol(x);
    }

    /** The visible point nearest to canvas position (px, py) within `radius` px, or -1. */
    function nearest(px, py, radius) {
      const p = toData(px, py);
      const r = radius / scale;
      const c0 = cellCol(p.x - r);
      const c1 = cellCol(p.x + r);
      const r0 = cellRow(p.y - r);
      const r1 = cellRow(p.y + r);
      let best = -1;
      let bestD = radius * radius;
      for (let row = r0; row <= r1; row++) {
        for (let col = c0; col <= c1; col++) {
          const c = row * gx + col;
          for (let k = cellStart[c]; k < cellStart[c + 1]; k++) {
            const i = cellItems[k];
            if (!visible[codes[i]]) {
              continue;
            }
            const dx = sx(i) - px;
            const dy = sy(i) - py;
            const d = dx * dx + dy * dy;
            if (d <= bestD) {
              bestD = d;
              best = i;
            }
          }
        }
      }
      return best;
    }

    // ------------------------------------------------------------ drawing

    // Two layers: the points (redrawn only when the view, the visible statuses or the
    // selection change) are kept in an offscreen canvas; hovering and drawing a box or lasso
    // only copy it back and add their overlay, so they stay cheap with 100,000 points.
    const layer = document.createElement('canvas');
    const layerCtx = layer.getContext('2d');
    let layerDirty = true;

    function requestDraw(pointsChanged) {
      if (pointsChanged) {
        layerDirty = true;
      }
      if (!drawPending) {
        drawPending = true;
        window.requestAnimationFrame(function () {
          drawPending = false;
          draw();
        });
      }
    }

    function pointRadius() {
      const base = n > 50000 ? 1.4 : n > 10000 ? 2 : n > 1000 ? 3 : 4;
      return Math.min(base * Math.pow(scale / fitScale, 0.25), 9);
    }

    function drawPoints(g) {
      if (layer.width !== canvas.width || layer.height !== canvas.height) {
        layer.width = canvas.width;
        layer.height = canvas.height;
      }
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, cssW, cssH);
      const r = pointRadius();
      const round = n <= 20000;
      const removed = STATUSES.indexOf('removed');
      const selecting = nSelected > 0;

      // One path per colour and pass; `only` = 1: selected points only, 0: all points.
      function fillPoints(points, only) {
        g.beginPath();
        for (let k = 0; k < points.length; k++) {
          const i = points[k];
          if (only && !selectedMask[i]) {
            continue;
          }
          if (colourGroups && !visible[codes[i]]) {
            continue;
          }
          const x = sx(i);
          const y = sy(i);
          if (x < -r || y < -r || x > cssW + r || y > cssH + r) {
            continue;
          }
          if (round) {
            g.moveTo(x + r, y);
            g.arc(x, y, r, 0, 2 * Math.PI);
          } else {
            g.rect(x - r, y - r, 2 * r, 2 * r);
          }
        }
        g.fill();
      }

      // With a selection, every point is dimmed and the selected ones are drawn again on top
      // at full strength: a selection of 40,000 points stays readable, not a black blob.
      if (colourGroups) {
        for (const group of colourGroups) {
          g.fillStyle = group.colour;
          g.globalAlpha = selecting ? 0.16 : 0.9;
          fillPoints(group.points, 0);
        }
        if (selecting) {
          g.globalAlpha = 1;
          for (const group of colourGroups) {
            g.fillStyle = group.colour;
            fillPoints(group.points, 1);
          }
        }
      } else {
        for (const code of order) {
          if (!visible[code] || !byStatus[code]) {
            continue;
          }
          g.fillStyle = colours[code];
          g.globalAlpha = selecting ? 0.16 : code === removed ? 0.75 : 0.95;
          fillPoints(byStatus[code], 0);
        }
        if (selecting) {
          g.globalAlpha = 1;
          for (const code of order) {
            if (visible[code] && byStatus[code]) {
              g.fillStyle = colours[code];
              fillPoints(byStatus[code], 1);
            }
          }
        }
      }
      g.globalAlpha = 1;
      if (selecting && nSelected <= 3000) {
        const ring = r + 1.5;
        g.strokeStyle = '#111827';
        g.lineWidth = 1;
        g.beginPath();
        for (let i = 0; i < n; i++) {
          if (selectedMask[i] && visible[codes[i]]) {
            const x = sx(i);
            const y = sy(i);
            if (x < -ring || y < -ring || x > cssW + ring || y > cssH + ring) {
              continue;
            }
            g.moveTo(x + ring, y);
            g.arc(x, y, ring, 0, 2 * Math.PI);
          }
        }
        g.stroke();
      }
    }

    function draw() {
      if (layerDirty) {
        drawPoints(layerCtx);
        layerDirty = false;
      }
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(layer, 0, 0);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      if (hover >= 0) {
        ctx.strokeStyle = '#111827';
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(sx(hover), sy(hover), pointRadius() + 4, 0, 2 * Math.PI);
        ctx.stroke();
      }
      if (drag && (drag.kind === 'box' || (drag.kind === 'lasso' && drag.path.length > 1))) {
        ctx.setLineDash([5, 4]);
        ctx.strokeStyle = '#2f5bd3';
        ctx.fillStyle = 'rgba(47, 91, 211, 0.08)';
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        if (drag.kind === 'box') {
          ctx.rect(
            Math.min(drag.x0, drag.x1),
            Math.min(drag.y0, drag.y1),
            Math.abs(drag.x1 - drag.x0),
            Math.abs(drag.y1 - drag.y0),
          );
        } else {
          ctx.moveTo(drag.path[0][0], drag.path[0][1]);
          for (const [x, y] of drag.path) {
            ctx.lineTo(x, y);
          }
          ctx.closePath();
        }
        ctx.fill();
        ctx.stroke();
        ctx.setLineDash([]);
      }
    }

    // ------------------------------------------------------------ selection

    function selectWhere(inside, add) {
      if (!add) {
        selectedMask.fill(0);
      }
      for (let i = 0; i < n; i++) {
        if (visible[codes[i]] && inside(i)) {
          selectedMask[i] = 1;
        }
      }
      selectionChanged();
    }

    function selectBox(x0, y0, x1, y1, add) {
      const a = toData(Math.min(x0, x1), Math.max(y0, y1));
      const b = toData(Math.max(x0, x1), Math.min(y0, y1));
      selectWhere(function (i) {
        return xs[i] >= a.x && xs[i] <= b.x && ys[i] >= a.y && ys[i] <= b.y;
      }, add);
    }

    function selectLasso(path, add) {
      if (path.length < 3) {
        if (!add) {
          selectWhere(function () {
            return false;
          }, false);
        }
        return;
      }
      const poly = path.map(function (p) {
        return toData(p[0], p[1]);
      });
      let lx = Infinity;
      let hx = -Infinity;
      let ly = Infinity;
      let hy = -Infinity;
      for (const p of poly) {
        lx = Math.min(lx, p.x);
        hx = Math.max(hx, p.x);
        ly = Math.min(ly, p.y);
        hy = Math.max(hy, p.y);
      }
      selectWhere(function (i) {
        const x = xs[i];
        const y = ys[i];
        if (x < lx || x > hx || y < ly || y > hy) {
          return false;
        }
        // Even-odd ray casting: count polygon edges crossed by a ray going right.
        let inside = false;
        for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
          const pa = poly[a];
          const pb = poly[b];
          if ((pa.y > y) !== (pb.y > y) && x < ((pb.x - pa.x) * (y - pa.y)) / (pb.y - pa.y) + pa.x) {
            inside = !inside;
          }
        }
        return inside;
      }, add);
    }

    function selectedSamples() {
      const out = [];
      for (let i = 0; i < n; i++) {
        if (selectedMask[i]) {
          out.push(sampleIndex[i]);
        }
      }
      out.sort(function (a, b) {
        return a - b;
      });
      return out;
    }

    async function describe(indices) {
      const missing = indices.filter(function (i) {
        return !names.has(i);
      });
      for (let k = 0; k < missing.length; k += CHUNK) {
        const rows = await window.selfsup.fetchJSON(frame.dataset.samplesUrl, {
          method: 'POST',
          headers: {'Content-Type': 'application/json', Accept: 'application/json'},
          body: JSON.stringify({indices: missing.slice(k, k + CHUNK)}),
        });
        for (const row of rows) {
          names.set(row.index, row);
        }
      }
      return indices.map(function (i) {
        return names.get(i);
      });
    }

    function selectionChanged() {
      nSelected = 0;
      for (let i = 0; i < n; i++) {
        nSelected += selectedMask[i];
      }
      countEl.textContent = nSelected.toLocaleString();
      copyBtn.disabled = nSelected === 0;
      clearBtn.disabled = nSelected === 0;
      if (tagBar) {
        tagBar.refresh();
      }
      requestDraw(true);
      const request = ++listRequest;
      listEl.textContent = '';
      if (nSelected === 0) {
        noteEl.textContent = 'Use the box or lasso tool to select points.';
        return;
      }
      const first = selectedSamples().slice(0, LIST_LIMIT);
      noteEl.textContent = nSelected > LIST_LIMIT
        ? 'Showing the first ' + LIST_LIMIT + ' of ' + nSelected.toLocaleString() + ' files.'
        : '';
      describe(first).then(function (rows) {
        if (request !== listRequest) {
          return; // a newer selection replaced this one
        }
        const fragment = document.createDocumentFragment();
        for (const row of rows) {
          const li = document.createElement('li');
          const swatch = document.createElement('span');
          swatch.className = 'swatch status-' + row.status;
          swatch.title = row.status;
          const link = document.createElement('a');
          link.href = frame.dataset.detailPrefix + row.index;
          link.textContent = row.filename;
          link.title = row.filename;
          link.dataset.testid = 'map-selected-file';
          link.dataset.index = String(row.index);
          li.append(swatch, link);
          fragment.append(li);
        }
        listEl.append(fragment);
      }).catch(function (err) {
        noteEl.textContent = 'Could not list the files: ' + err.message;
      });
    }

    async function copyNames() {
      const indices = selectedSamples();
      copyBtn.disabled = true;
      try {
        const rows = await describe(indices);
        const text = rows.map(function (r) {
          return r.filename;
        }).join('\n') + '\n';
        await writeClipboard(text);
        noteEl.textContent = 'Copied ' + rows.length.toLocaleString() + ' file names.';
      } catch (err) {
        noteEl.textContent = 'Could not copy: ' + err.message;
      } finally {
        copyBtn.disabled = nSelected === 0;
      }
    }

    async function writeClipboard(text) {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        return;
      }
      // Plain http on another host has no Clipboard API: the old textarea route still works.
      const area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.className = 'visually-hidden';
      document.body.append(area);
      area.select();
      const ok = document.execCommand('copy');
      area.remove();
      if (!ok) {
        throw new Error('the browser refused to copy');
      }
    }

    /** Select the points carrying the tag typed in the tag bar (replacing the selection). */
    async function selectTagged() {
      const input = tagBarEl.querySelector('[data-testid="tag-input"]');
      const note = tagBarEl.querySelector('[data-role="tag-note"]');
      const tag = input.value.trim();
      if (!tag) {
        note.textContent = 'Type a tag name first.';
        input.focus();
        return;
      }
      let data;
      try {
        data = await window.selfsup.fetchJSON(tagBarEl.dataset.taggedUrl + encodeURIComponent(tag));
      } catch (err) {
        note.textContent = 'Could not load #' + tag + ': ' + err.message;
        return;
      }
      selectedMask.fill(0);
      let missing = 0;
      for (const index of data.indices) {
        const i = pointOf.get(index);
        if (i === undefined) {
          missing += 1; // a sample without a point (corrupt, duplicate, outside the UMAP subsample)
        } else if (visible[codes[i]]) {
          selectedMask[i] = 1;
        }
      }
      note.textContent = data.indices.length.toLocaleString() + ' tagged #' + tag +
        (missing ? ', ' + missing.toLocaleString() + ' of them not on this map.' : '.');
      selectionChanged();
    }

    // ------------------------------------------------------------ hover tooltip

    let tipTimer = 0;

    function showTooltip(i, px, py) {
      const index = sampleIndex[i];
      const status = STATUSES[codes[i]];
      if (tooltip.dataset.index !== String(index)) {
        tooltip.dataset.index = String(index);
        tipImg.src = frame.dataset.thumbPrefix + index;
        tipImg.alt = '';
        tipStatus.className = 'badge status-' + status;
        tipStatus.textContent = status;
        const known = names.get(index);
        tipName.textContent = known ? known.filename : '…';
        window.clearTimeout(tipTimer);
        if (!known) {
          tipTimer = window.setTimeout(function () {
            describe([index]).then(function (rows) {
              if (tooltip.dataset.index === String(index)) {
                tipName.textContent = rows[0].filename;
                tipImg.alt = rows[0].filename;
              }
            }).catch(function (err) {
              tipName.textContent = 'sample ' + index + ' (' + err.message + ')';
            });
          }, 60);
        } else {
          tipImg.alt = known.filename;
        }
      }
      tooltip.hidden = false;
      const w = tooltip.offsetWidth;
      const h = tooltip.offsetHeight;
      let left = px + 14;
      let top = py + 14;
      if (left + w > cssW - 4) {
        left = px - w - 14;
      }
      if (top + h > cssH - 4) {
        top = py - h - 14;
      }
      tooltip.style.left = Math.max(4, left) + 'px';
      tooltip.style.top = Math.max(4, top) + 'px';
    }

    function hideTooltip() {
      tooltip.hidden = true;
      delete tooltip.dataset.index;
    }

    function setHover(i, px, py) {
      if (i !== hover) {
        hover = i;
        requestDraw();
      }
      if (i >= 0) {
        showTooltip(i, px, py);
      } else {
        hideTooltip();
      }
    }

    // ------------------------------------------------------------ input

    function local(event) {
      const rect = canvas.getBoundingClientRect();
      return [event.clientX - rect.left, event.clientY - rect.top];
    }

    function setTool(name) {
      if (!['pan', 'box', 'lasso'].includes(name)) {
        throw new Error('unknown tool ' + name + ': use pan, box or lasso');
      }
      tool = name;
      frame.dataset.tool = name;
      for (const button of toolButtons) {
        button.setAttribute('aria-pressed', button.dataset.tool === name ? 'true' : 'false');
      }
    }

    canvas.addEventListener('pointerdown', function (event) {
      if (event.button !== 0 || n === 0) {
        return;
      }
      const [x, y] = local(event);
      canvas.setPointerCapture(event.pointerId);
      if (tool === 'pan') {
        drag = {kind: 'pan', x0: x, y0: y, cx: cx, cy: cy, moved: false};
        frame.classList.add('dragging');
      } else if (tool === 'box') {
        drag = {kind: 'box', x0: x, y0: y, x1: x, y1: y, add: event.shiftKey};
      } else {
        drag = {kind: 'lasso', path: [[x, y]], add: event.shiftKey};
      }
      setHover(-1);
    });

    canvas.addEventListener('pointermove', function (event) {
      const [x, y] = local(event);
      if (!drag) {
        if (n > 0) {
          setHover(nearest(x, y, HOVER_PX), x, y);
        }
        return;
      }
      if (drag.kind === 'pan') {
        if (Math.abs(x - drag.x0) + Math.abs(y - drag.y0) > 3) {
          drag.moved = true;
        }
        cx = drag.cx - (x - drag.x0) / scale;
        cy = drag.cy + (y - drag.y0) / scale;
        requestDraw(true);
        return;
      } else if (drag.kind === 'box') {
        drag.x1 = x;
        drag.y1 = y;
      } else {
        const last = drag.path[drag.path.length - 1];
        if (Math.abs(x - last[0]) + Math.abs(y - last[1]) >= 2) {
          drag.path.push([x, y]);
        }
      }
      requestDraw();
    });

    function endDrag(event, cancelled) {
      if (!drag) {
        return;
      }
      const current = drag;
      drag = null;
      frame.classList.remove('dragging');
      if (canvas.hasPointerCapture(event.pointerId)) {
        canvas.releasePointerCapture(event.pointerId);
      }
      if (cancelled) {
        requestDraw();
        return;
      }
      const [x, y] = local(event);
      if (current.kind === 'pan') {
        if (!current.moved) {
          const hit = nearest(x, y, HOVER_PX);
          if (hit >= 0) {
            window.location.assign(frame.dataset.detailPrefix + sampleIndex[hit]);
          }
        }
      } else if (current.kind === 'box') {
        selectBox(current.x0, current.y0, x, y, current.add);
      } else {
        current.path.push([x, y]);
        selectLasso(current.path, current.add);
      }
      requestDraw();
    }

    canvas.addEventListener('pointerup', function (event) {
      endDrag(event, false);
    });
    canvas.addEventListener('pointercancel', function (event) {
      endDrag(event, true);
    });
    canvas.addEventListener('pointerleave', function () {
      if (!drag) {
        setHover(-1);
      }
    });

    canvas.addEventListener('wheel', function (event) {
      if (n === 0) {
        return;
      }
      event.preventDefault();
      const [x, y] = local(event);
      const anchor = toData(x, y);
      const factor = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
      scale = Math.min(fitScale * MAX_ZOOM, Math.max(fitScale * MIN_ZOOM, scale * factor));
      // Keep the data point under the cursor where it is.
      cx = anchor.x - (x - cssW / 2) / scale;
      cy = anchor.y - (cssH / 2 - y) / scale;
      setHover(nearest(x, y, HOVER_PX), x, y);
      requestDraw(true);
    }, {passive: false});

    document.addEventListener('keydown', function (event) {
      if (event.key === 'Escape') {
        if (drag) {
          drag = null;
          requestDraw();
        } else if (nSelected > 0) {
          selectedMask.fill(0);
          selectionChanged();
        }
      }
    });

    for (const button of toolButtons) {
      button.addEventListener('click', function () {
        setTool(button.dataset.tool);
      });
    }
    document.querySelector('[data-action="reset-view"]').addEventListener('click', function () {
      fit();
      requestDraw(true);
    });
    copyBtn.addEventListener('click', copyNames);
    clearBtn.addEventListener('click', function () {
      selectedMask.fill(0);
      selectionChanged();
    });
    for (const button of legendButtons) {
      button.addEventListener('click', function () {
        const code = STATUSES.indexOf(button.dataset.status);
        visible[code] = !visible[code];
        button.setAttribute('aria-pressed', visible[code] ? 'true' : 'false');
        if (!visible[code]) {
          // Hidden points leave the selection: what is listed is what is shown.
          let changed = false;
          for (let i = 0; i < n; i++) {
            if (codes[i] === code && selectedMask[i]) {
              selectedMask[i] = 0;
              changed = true;
            }
          }
          if (changed) {
            selectionChanged();
          }
        }
        setHover(-1);
        requestDraw(true);
      });
    }

    // ------------------------------------------------------------ colour by a signal

    function legendItem(colour, text) {
      const item = document.createElement('li');
      item.className = 'legend-item';
      item.setAttribute('data-testid', 'colour-legend-item');
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = colour;
      item.append(swatch, document.createTextNode(text));
      return item;
    }

    // Points grouped by colour from the signal's per-sample answer (codes or values by
    // sample index), and the legend that explains them.
    function applyColour(by, data) {
      const groups = [];
      const legend = [];
      const none = [];
      if (data.kind === 'category') {
        const lists = data.categories.map(function () {
          return [];
        });
        for (let i = 0; i < n; i++) {
          const c = data.codes[sampleIndex[i]];
          (c >= 0 ? lists[c] : none).push(i);
        }
        groups.push({colour: NO_VALUE, points: Int32Array.from(none)});
        data.categories.forEach(function (name, c) {
          const colour = PALETTE[c % PALETTE.length];
          groups.push({colour: colour, points: Int32Array.from(lists[c])});
          legend.push(legendItem(colour, name + ' (' + lists[c].length.toLocaleString() + ')'));
        });
      } else {
        const lo = data.min;
        const span = data.max - data.min;
        const lists = [];
        for (let k = 0; k < RAMP_STEPS; k++) {
          lists.push([]);
        }
        for (let i = 0; i < n; i++) {
          const v = data.values[sampleIndex[i]];
          if (v === null || v === undefined) {
            none.push(i);
            continue;
          }
          const t = span > 0 ? (v - lo) / span : 0.5;
          lists[Math.min(RAMP_STEPS - 1, Math.floor(t * RAMP_STEPS))].push(i);
        }
        groups.push({colour: NO_VALUE, points: Int32Array.from(none)});
        for (let k = 0; k < RAMP_STEPS; k++) {
          groups.push({colour: rampColour((k + 0.5) / RAMP_STEPS), points: Int32Array.from(lists[k])});
        }
        if (lo !== null) {
          const bar = document.createElement('li');
          bar.className = 'colour-ramp';
          bar.setAttribute('data-testid', 'colour-ramp');
          bar.dataset.min = String(lo);
          bar.dataset.max = String(data.max);
          const low = document.createElement('span');
          low.textContent = Number(lo).toPrecision(4);
          const grad = document.createElement('span');
          grad.className = 'ramp';
          grad.style.background = 'linear-gradient(to right, ' +
            [0, 0.25, 0.5, 0.75, 1].map(rampColour).join(', ') + ')';
          const high = document.createElement('span');
          high.textContent = Number(data.max).toPrecision(4);
          bar.append(low, grad, high);
          legend.push(bar);
        }
      }
      if (none.length) {
        legend.push(legendItem(NO_VALUE, 'no value (' + none.length.toLocaleString() + ')'));
      }
      colourGroups = groups;
      colouredBy = by;
      colourLegend.replaceChildren.apply(colourLegend, legend);
      colourLegend.hidden = false;
      frame.dataset.colourBy = by;
      requestDraw(true);
    }

    async function colourBy(by) {
      if (by === 'status') {
        colourGroups = null;
        colouredBy = 'status';
        colourLegend.replaceChildren();
        colourLegend.hidden = true;
        frame.dataset.colourBy = by;
        requestDraw(true);
        return;
      }
      colourSelect.disabled = true;
      try {
        const data = await window.selfsup.fetchJSON(
          colourSelect.dataset.colourUrl + encodeURIComponent(by));
        applyColour(by, data);
      } catch (err) {
        colourLegend.replaceChildren(legendItem(NO_VALUE, 'Could not colour by ' + by + ': ' + err.message));
        colourLegend.hidden = false;
      } finally {
        colourSelect.disabled = false;
      }
    }

    // ------------------------------------------------------------ loading

    async function load() {
      let data;
      try {
        data = await window.selfsup.fetchJSON(frame.dataset.projectionUrl);
      } catch (err) {
        statusBox.textContent = 'Could not load the projection: ' + err.message;
        return;
      }
      n = data.index.length;
      xs = Float32Array.from(data.x);
      ys = Float32Array.from(data.y);
      codes = new Uint8Array(n);
      sampleIndex = Int32Array.from(data.index);
      selectedMask = new Uint8Array(n);
      const lists = STATUSES.map(function () {
        return [];
      });
      const remap = data.statuses.map(function (s) {
        return STATUSES.indexOf(s);
      });
      minX = Infinity;
      maxX = -Infinity;
      minY = Infinity;
      maxY = -Infinity;
      for (let i = 0; i < n; i++) {
        const code = remap[data.status[i]];
        codes[i] = code;
        lists[code].push(i);
        pointOf.set(sampleIndex[i], i);
        minX = Math.min(minX, xs[i]);
        maxX = Math.max(maxX, xs[i]);
        minY = Math.min(minY, ys[i]);
        maxY = Math.max(maxY, ys[i]);
      }
      if (n === 0) {
        minX = minY = 0;
        maxX = maxY = 1;
      }
      byStatus = lists.map(function (list) {
        return Int32Array.from(list);
      });
      for (const button of legendButtons) {
        const code = STATUSES.indexOf(button.dataset.status);
        const count = button.querySelector('[data-role="legend-count"]');
        const total = code >= 0 ? byStatus[code].length : 0;
        count.textContent = total.toLocaleString();
        button.classList.toggle('zero', total === 0);
      }
      buildGrid();
      if (description) {
        description.textContent = data.description;
      }
      statusBox.hidden = n > 0;
      if (n === 0) {
        statusBox.textContent = 'No points to show.';
      }
      api.points = n;
      api.toCanvas = function (index) {
        const i = pointOf.get(Number(index));
        return i === undefined ? null : {x: sx(i), y: sy(i)};
      };
      api.selected = selectedSamples;
      api.setTool = setTool;
      api.colouredBy = function () {
        return colouredBy;
      };
      if (colourSelect) {
        colourSelect.addEventListener('change', function () {
          colourBy(colourSelect.value);
        });
      }
      if (tagBarEl) {
        tagBar = window.selfsup.initTagBar(tagBarEl, selectedSamples, null);
        tagBarEl.querySelector('[data-action="select-tag"]').addEventListener('click', selectTagged);
      }
      new ResizeObserver(resize).observe(frame);
      resize();
      window.requestAnimationFrame(function () {
        layerDirty = true;
        draw();
        api.ready = true;
        frame.dataset.ready = 'true';
      });
    }

    load();
  }
})();
