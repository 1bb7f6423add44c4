/* ---- the cards ------------------------------------------------------------- */
function step(name, title, formula, note, kind) {
  return {
    name, title, formula, note, kind,
    get: s => view(s, name),
    rowLabels: s => labelsOf(s, view(s, name).rowAxis),
    colLabels: s => labelsOf(s, view(s, name).colAxis),
    explain: (s, i, j, m) => explain(s, name, i, j, m),
  };
}
function scaleText() {
  const f = isLib() ? libScale(0, P0) : state.scale ? scaleOn(0, P0) : 1;
  const d = dk(0, P0), t = scalar(0, P0 + 'temperature', 1);
  const s = f === 1 ? '\u00d7 1 (not scaled)' : Math.abs(f - 1 / Math.sqrt(d)) < 1e-7 ? '\u00d7 1/\u221a' + d + ' = ' + short(f) : '\u00d7 ' + short(f);
  return t === 1 ? s : s + ' \u00f7 ' + short(t) + ' (temperature)';
}
function cards() {
  const list = [];
  const anyMask = p => seqs.some((_, s) => view(s, p + 'mask'));
  if (!H) {
    list.push(step('embeddings', 'Embeddings', 'X', 'The input vectors, one row per token. Here Q = K = V = X: no learned weights.'));
    list.push(step('scores', 'Scores', 'X \u00b7 X\u1d40', 'The dot product of every pair of tokens: raw similarity, not yet probabilities.'));
    list.push(step('scaled', 'Scaled scores', scaleText(), 'Scaling keeps the softmax from getting too sharp.'));
    if (anyMask('')) list.push(step('mask', 'Mask', 'added to the scaled scores', 'A causal mask: a token never looks at the tokens after it.', 'mask'));
    list.push(step('attention', 'Attention', 'softmax of each row', 'Positive, each row sums to 1: how much each token (row) takes from every token (column).'));
    list.push(step('output', 'Output', 'attention \u00b7 V', 'Each row a weighted average of the value vectors (V = X): the token, updated by its context.'));
  } else {
    const p = 'head' + state.head + '.', hn = 'head ' + state.head;
    list.push(step('embeddings', 'Embeddings', 'X', 'The input vectors, one row per token.'));
    list.push({ thumbs: true });
    const part = (n, s) => Object.assign(step(p + n, s), { short: s });
    list.push({ title: 'Queries, keys, values', formula: 'X \u00b7 W\u1d40 + b', parts: [part('q', 'Q'), part('k', 'K'), part('v', 'V')],
      note: hn + ': what each token looks for (Q), offers (K) and passes on (V).' });
    list.push(step(p + 'scores', 'Scores', 'Q \u00b7 K\u1d40', hn + ': the dot product of every query with every key.'));
    list.push(step(p + 'scaled', 'Scaled scores', scaleText(), hn + ': scaling keeps the softmax from getting too sharp.'));
    if (anyMask(p)) list.push(step(p + 'mask', 'Mask', 'added to the scaled scores', hn + ': \u2212\u221e where a query may not look.', 'mask'));
    list.push(step(p + 'attention', 'Attention', 'softmax of each row', hn + ': each row sums to 1.'));
    list.push(step(p + 'output', 'Head output', 'attention \u00b7 V', hn + ': weighted averages of its value vectors.'));
    list.push(step('concat', 'Concatenated heads', '[O\u2080 \u2026 O\u2099]', 'Every head\u2019s output side by side.'));
    list.push(step('output', 'Output', 'concat \u00b7 W_O\u1d40 + b_O', 'The layer\u2019s output: the heads mixed back into one vector per token.'));
  }
  if (shared.length) {
    list.push({
      name: 'diff', title: 'Difference of outputs', formula: 'output in A \u2212 output in B',
      note: 'For the tokens both inputs share: same input embedding, different context.',
      diff: true,
      get: () => diffMatrix(),
      rowLabels: () => shared.map(x => x.t),
      colLabels: () => labelsOf(0, view(0, 'output').colAxis),
      explain: (s, i, j, m) => {
        const x = shared[i], a = view(0, 'output'), b = view(1, 'output'), cl = labelsOf(0, a.colAxis);
        return '<div class="h">difference [' + esc(x.t) + ', ' + esc(label(cl, j)) + '] = <span class="v">' + short(m.d[i * m.c + j]) + '</span></div>' +
          '<div>output<sub>A</sub>[' + esc(x.t) + '] \u2212 output<sub>B</sub>[' + esc(x.t) + ']: ' + full(a.d[x.i * a.c + j]) + ' \u2212 ' + full(b.d[x.j * b.c + j]) + '</div>';
      },
    });
  }
  return list;
}

function h(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
function paneCaption(s) { return NAMES[s] + ' \u00b7 ' + (seqs[s].caption || ''); }

/* A matrix shrunk to at most n x n by averaging blocks (thumbnails of long inputs). */
function pool(a, n) {
  if (a.r <= n && a.c <= n) return a;
  const r = Math.min(a.r, n), c = Math.min(a.c, n), sum = new Float64Array(r * c), cnt = new Float64Array(r * c);
  for (let i = 0; i < a.r; i++) {
    const bi = Math.floor(i * r / a.r) * c;
    for (let j = 0; j < a.c; j++) {
      const v = a.d[i * a.c + j];
      if (v === -Infinity) continue;
      const k = bi + Math.floor(j * c / a.c);
      sum[k] += v; cnt[k]++;
    }
  }
  const d = new Float32Array(r * c);
  for (let k = 0; k < r * c; k++) d[k] = cnt[k] ? sum[k] / cnt[k] : -Infinity;
  return { r, c, d, pooled: true };
}
function thumbsCard() {
  const card = h('section', 'card');
  const t = h('h2', null, 'Attention of every head'); t.appendChild(h('span', 'f', 'click one to inspect it'));
  card.appendChild(t);
  card.appendChild(h('p', 'note', 'Each head attends in its own subspace; darker = more attention.'));
  /* Shrunk copies (block averages for long inputs) on one colour scale. */
  const n = view(0, 'head0.attention').c, sz = Math.min(96, Math.max(56, n * 12));
  const smalls = seqs.map((_, s) => { const r = []; for (let k = 0; k < H; k++) r.push(pool(view(s, 'head' + k + '.attention'), sz * DPR)); return r; });
  const pooled = smalls.some(r => r.some(m => m.pooled));
  const sc = scaleFor([].concat(...smalls), pooled ? 'range' : undefined);
  const panes = h('div', 'panes');
  seqs.forEach((_, s) => {
    const fig = h('figure'); fig.appendChild(h('figcaption', null, paneCaption(s)));
    const row = h('div', 'thumbs');
    smalls[s].forEach((small, hh) => {
      const box = h('div', 'thumb' + (hh === state.head ? ' on' : ''));
      const cv = document.createElement('canvas');
      cv.width = sz * DPR; cv.height = sz * DPR; cv.style.width = sz + 'px'; cv.style.height = sz + 'px';
      const px = document.createElement('canvas');
      px.width = small.c; px.height = small.r;
      const pg = px.getContext('2d'), img = pg.createImageData(small.c, small.r);
      fillPixels(sc, small.d, img.data);
      pg.putImageData(img, 0, 0);
      const g = cv.getContext('2d');
      g.imageSmoothingEnabled = false;
      g.drawImage(px, 0, 0, cv.width, cv.height);
      box.appendChild(cv); box.appendChild(h('div', null, 'head ' + hh));
      box.addEventListener('click', () => { state.head = hh; render(); });
      row.appendChild(box);
    });
    fig.appendChild(row); panes.appendChild(fig);
  });
  card.appendChild(panes);
  return card;
}

const cardsEl = h('div', 'cards');
function render() {
  all.length = 0;
  cardsEl.textContent = '';
  for (const spec of cards()) {
    if (spec.thumbs) { cardsEl.appendChild(thumbsCard()); continue; }
    const card = h('section', 'card');
    const t = h('h2', null, spec.title); t.appendChild(h('span', 'f', spec.formula)); card.appendChild(t);
    card.appendChild(h('p', 'note', spec.note));
    /* A card shows one step for every sequence, or (parts) a few steps side by side. */
    const parts = spec.parts || [spec], idx = spec.diff ? [-1] : seqs.map((_, s) => s);
    const items = [];
    idx.forEach(s => parts.forEach(pt => { const m = pt.get(s); if (m) items.push({ s, pt, m, rl: pt.rowLabels(s), cl: pt.colLabels(s) }); }));
    const sc = scaleFor(items.map(it => it.m), spec.kind);
    const lay = layoutFor(items), panes = h('div', 'panes');
    items.forEach(it => {
      const fig = h('figure'), hm = new Heatmap(it.pt, it.s, sc, it.m, lay);
      const cap = h('figcaption', null, it.s < 0 ? 'A \u2212 B, per shared token' : spec.parts ? NAMES[it.s] + ' \u00b7 ' + it.pt.short : paneCaption(it.s));
      cap.title = it.s >= 0 ? paneCaption(it.s) : cap.textContent;
      fig.style.width = Math.max(spec.parts ? 60 : 120, hm.W) + 'px';
      fig.appendChild(cap);
      fig.appendChild(hm.canvas);
      panes.appendChild(fig);
    });
    card.appendChild(panes);
    const lg = h('div', 'lg');
    lg.appendChild(legend(sc));
    card.appendChild(lg);
    cardsEl.appendChild(card);
  }
  updateBar();
}
function paintAll() { for (const m of all) m.paint(); updateChips(); }
function selectToken(s, i, tok) {
  const same = state.sel && state.sel.tok === tok && (s < 0 || state.sel.s === s && state.sel.i === i);
  state.sel = same ? null : { s: s < 0 ? 0 : s, i: s < 0 ? shared[i].i : i, tok };
  paintAll();
}

/* ---- page frame ---------------------------------------------------------- */
/* A link can carry the view: #token=mouse&head=1&scale=0&causal=1. */
(function applyHash() {
  const q = new URLSearchParams(location.hash.slice(1));
  if (q.has('head')) { const k = parseInt(q.get('head'), 10); if (k >= 0 && k < H) state.head = k; }
  if (q.has('scale')) state.scale = q.get('scale') === '1';
  if (q.has('causal')) state.causal = q.get('causal') === '1';
  const tok = q.get('token');
  for (let s = 0; tok !== null && s < NS && !state.sel; s++) {
    const i = labelsOf(s, 'token').indexOf(tok);
    if (i >= 0) state.sel = { s, i, tok };
  }
})();
const app = document.getElementById('app');
const top = h('header', 'top');
top.appendChild(h('h1', null, data.title || 'Self-attention'));
top.appendChild(h('p', null, (H ? 'A ' + H + '-head attention layer' : 'Self-attention with Q = K = V = X') +
  '. Every number is the library\u2019s own float32 value: hover a cell to see how it was obtained, click a token to follow it.'));
const chipsBox = h('div', 'seqs');
const chips = [];
seqs.forEach((q, s) => {
  const line = h('div', 'seq');
  line.appendChild(h('span', 'tag', NAMES[s]));
  const toks = labelsOf(s, 'token');
  if (toks.length <= 64) {
    toks.forEach((t, i) => {
      const b = h('button', 'tok', t);
      b.addEventListener('click', () => selectToken(s, i, t));
      chips.push({ b, s, i, t });
      line.appendChild(b);
    });
  } else line.appendChild(h('span', 'caption', (q.caption || '') + ' \u2014 ' + toks.length + ' tokens (click a row to highlight it)'));
  chipsBox.appendChild(line);
});
top.appendChild(chipsBox);
app.appendChild(top);
function updateChips() {
  for (const c of chips) {
    const sel = state.sel;
    c.b.classList.toggle('on', !!sel && (sel.s === c.s ? sel.i === c.i : sel.tok === c.t));
  }
}

const bar = h('div', 'bar');
function toggle(text, key) {
  const l = h('label'), cb = h('input');
  cb.type = 'checkbox'; cb.checked = state[key];
  cb.addEventListener('change', () => { state[key] = cb.checked; computed = null; render(); });
  l.appendChild(cb); l.appendChild(document.createTextNode(text));
  bar.appendChild(l);
  return cb;
}
const scaleLabel = Math.abs(scaleOn(0, P0) - 1 / Math.sqrt(dk(0, P0))) < 1e-7 ? 'scale by 1/\u221ad' : 'scale by ' + short(scaleOn(0, P0));
toggle(scaleLabel, 'scale');
toggle('causal mask', 'causal');
const badge = h('span', 'badge');
bar.appendChild(badge);
let headBtns = [];
if (H) {
  const hb = h('span', 'heads');
  hb.appendChild(h('span', 'hint', 'head'));
  for (let k = 0; k < H; k++) {
    const b = h('button', null, String(k));
    b.addEventListener('click', () => { state.head = k; render(); });
    hb.appendChild(b); headBtns.push(b);
  }
  bar.appendChild(hb);
}
const clear = h('button', null, 'clear highlight');
clear.addEventListener('click', () => { state.sel = null; paintAll(); });
bar.appendChild(clear);
bar.appendChild(h('span', 'hint', 'hover a cell for its formula' + (NS > 1 ? ' \u00b7 A and B share each card\u2019s colours' : '')));
function updateBar() {
  const libv = isLib();
  badge.className = 'badge ' + (libv ? 'lib' : 'calc');
  badge.textContent = libv ? 'library values' : 'recomputed in this page';
  body.dataset.mode = libv ? 'library' : 'recomputed';
  badge.title = libv ? 'exactly the float32 numbers the library computed' : 'the toggles differ from the library\u2019s run: attention and outputs recomputed in JavaScript';
  headBtns.forEach((b, k) => b.classList.toggle('on', k === state.head));
  updateChips();
}
app.appendChild(bar);
const main = h('main');
main.appendChild(cardsEl);
app.appendChild(main);

render();
const drawMs = performance.now() - T0;

/* Self-check: the page's own recomputation, with the library's settings,
 * against the library's numbers. */
let worst = 0;
seqs.forEach((_, s) => {
  const c = computeSeq(s, init);
  for (const name in c) {
    const a = c[name].d, b = lib(s, name);
    if (!b) continue;
    for (let k = 0; k < a.length; k++) {
      const x = a[k], y = b.d[k];
      if (x === y) continue;
      const dlt = Math.abs(x - y);
      if (dlt > worst || dlt !== dlt) worst = dlt !== dlt ? Infinity : dlt;
    }
  }
});
const foot = h('footer');
const t = (H ? H + ' heads, ' : '') + seqs.map((q, s) => NAMES[s] + ': ' + ntok(s) + ' tokens').join(', ');
foot.textContent = t + '. Drawn in ' + drawMs.toFixed(0) + ' ms. Check: this page\u2019s JavaScript, recomputing attention and outputs with the library\u2019s settings, differs from the library\u2019s float32 values by at most ' + short(worst) + '. Generated by attn; works offline, no network access.';
app.appendChild(foot);

/* Markers for automated checks. */
const first = document.querySelector('canvas.hm');
let ink = 0;
if (first) {
  const px = first.getContext('2d').getImageData(0, 0, first.width, first.height).data;
  for (let k = 0; k < px.length; k += 4) if (px[k] !== 255 || px[k + 1] !== 255 || px[k + 2] !== 255) ink++;
}
body.dataset.drawMs = drawMs.toFixed(1);
body.dataset.scriptStartMs = T0.toFixed(1);
body.dataset.parseMs = (T1 - T0).toFixed(1);
body.dataset.recomputeMaxDiff = String(worst);
body.dataset.firstCanvasInk = String(ink);
body.dataset.ready = '1';
})();
