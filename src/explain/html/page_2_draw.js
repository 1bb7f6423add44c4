/* ---- colours ----------------------------------------------------------- */
function lut(stops) {
  const t = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255 * (stops.length - 1), k = Math.min(stops.length - 2, Math.floor(x)), f = x - k;
    for (let c = 0; c < 3; c++) t[i * 3 + c] = Math.round(stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f);
  }
  return t;
}
const SEQ = lut([[247, 251, 255], [222, 235, 247], [158, 202, 225], [66, 146, 198], [8, 81, 156], [8, 48, 107]]);
const DIV = lut([[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199], [239, 138, 98], [178, 24, 43]]);
const MASKED = [214, 219, 226];
/* A colour scale for a set of matrices: sequential from 0 when nothing is
 * negative, otherwise diverging around 0. */
function scaleFor(mats, kind) {
  let lo = Infinity, hi = -Infinity;
  for (const m of mats) for (let i = 0; i < m.d.length; i++) { const v = m.d[i]; if (isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }
  if (lo > hi) lo = hi = 0;
  if (kind === 'mask') return { kind, lo: -1, hi: 0 };
  if (kind === 'range') return { kind: 'seq', lo, hi: hi > lo ? hi : lo + 1 };
  if (lo >= 0) return { kind: 'seq', lo: 0, hi: hi > 0 ? hi : 1 };
  const a = Math.max(-lo, hi);
  return { kind: 'div', lo: -a, hi: a };
}
function colour(sc, v) {
  if (v === -Infinity) return MASKED;
  if (sc.kind === 'mask') return [250, 250, 250];
  if (v !== v) return [255, 0, 255];
  const t = (v - sc.lo) / (sc.hi - sc.lo);
  const k = Math.max(0, Math.min(255, Math.round(t * 255))) * 3, L = sc.kind === 'seq' ? SEQ : DIV;
  return [L[k], L[k + 1], L[k + 2]];
}
/* Writes the colours of every value into RGBA pixels (no per-cell allocation). */
function fillPixels(sc, d, a) {
  const L = sc.kind === 'seq' ? SEQ : DIV, lo = sc.lo, k = 255 / ((sc.hi - lo) || 1);
  for (let i = 0, n = d.length; i < n; i++) {
    const v = d[i], o = 4 * i;
    let r, g, b;
    if (v === -Infinity) { r = MASKED[0]; g = MASKED[1]; b = MASKED[2]; }
    else if (sc.kind === 'mask') { r = g = b = 250; }
    else if (v !== v) { r = 255; g = 0; b = 255; }
    else {
      let t = Math.round((v - lo) * k);
      t = (t < 0 ? 0 : t > 255 ? 255 : t) * 3;
      r = L[t]; g = L[t + 1]; b = L[t + 2];
    }
    a[o] = r; a[o + 1] = g; a[o + 2] = b; a[o + 3] = 255;
  }
}
function darkOn(rgb) { return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 140; }

/* ---- heatmaps on canvas -------------------------------------------------- */
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
const BOLD = '600 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
const DPR = Math.max(1, Math.min(2, window.devicePixelRatio || 1));
const measurer = document.createElement('canvas').getContext('2d');
function clip(s) { return s.length > 14 ? s.slice(0, 13) + '\u2026' : s; }
/* Cells big enough for their value when a matrix is small, down to one
 * pixel when it is long (512 tokens: 512 px). */
function cellW(n) { return n <= 12 ? 44 : Math.max(1, Math.min(28, Math.floor(512 / n))); }
function cellH(n) { return n <= 12 ? 22 : Math.max(1, Math.min(20, Math.floor(512 / n))); }
/* One layout for the panes of a card, so that A and B line up. */
function layoutFor(items) {
  let r = 0, c = 0, rw = 0, cwid = 0;
  measurer.font = FONT;
  for (const it of items) {
    r = Math.max(r, it.m.r); c = Math.max(c, it.m.c);
    for (let i = 0; i < it.m.r; i++) rw = Math.max(rw, measurer.measureText(clip(label(it.rl, i))).width);
    for (let j = 0; j < it.m.c; j++) cwid = Math.max(cwid, measurer.measureText(clip(label(it.cl, j))).width);
  }
  const cw = cellW(c), ch = cellH(r), rot = cwid > cw - 4;
  return { cw, ch, rot, left: Math.ceil(rw) + 8, top: rot ? Math.ceil(cwid * 0.71) + 10 : 16, right: rot ? Math.max(2, Math.ceil(cwid * 0.71 - cw / 2) + 6) : 2 };
}
const TOKEN_AXES = { token: 1, query: 1, key: 1 };
const all = []; /* every live heatmap, for highlights */

class Heatmap {
  /* spec: {title, get(s), explain(s,i,j), rowLabels(s), colLabels(s)}; s: sequence, or -1 for the difference */
  constructor(spec, s, sc, m, lay) {
    this.spec = spec; this.s = s; this.sc = sc; this.m = m;
    this.rl = spec.rowLabels(s); this.cl = spec.colLabels(s);
    this.hover = null;
    Object.assign(this, lay);
    this.W = this.left + m.c * this.cw + this.right;
    this.Hh = this.top + m.r * this.ch + 2;
    const cv = this.canvas = document.createElement('canvas');
    cv.className = 'hm';
    /* For scripts and tests: which matrix, and where its cells are. */
    cv.dataset.step = spec.name || ''; cv.dataset.seq = String(s);
    cv.dataset.cells = [this.left, this.top, this.cw, this.ch].join(',');
    cv.width = this.W * DPR; cv.height = this.Hh * DPR;
    cv.style.width = this.W + 'px'; cv.style.height = this.Hh + 'px';
    this.renderBase();
    this.paint();
    cv.addEventListener('mousemove', e => this.move(e));
    cv.addEventListener('mouseleave', () => { this.hover = null; this.paint(); hideTip(); });
    cv.addEventListener('click', e => this.click(e));
    all.push(this);
  }
  renderBase() {
    const { m, cw, ch, left, top } = this;
    const b = this.base = document.createElement('canvas');
    b.width = this.W * DPR; b.height = this.Hh * DPR;
    const g = b.getContext('2d');
    g.scale(DPR, DPR);
    g.fillStyle = '#fff'; g.fillRect(0, 0, this.W, this.Hh);
    /* One pixel per cell, then scaled up without smoothing: fast at 512 x 512. */
    const px = document.createElement('canvas');
    px.width = m.c; px.height = m.r;
    const pg = px.getContext('2d'), img = pg.createImageData(m.c, m.r);
    fillPixels(this.sc, m.d, img.data);
    pg.putImageData(img, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(px, left, top, m.c * cw, m.r * ch);
    if (cw >= 6 && ch >= 6) { /* white grid between cells */
      g.fillStyle = '#fff';
      for (let j = 1; j < m.c; j++) g.fillRect(left + j * cw - 0.5, top, 1, m.r * ch);
      for (let i = 1; i < m.r; i++) g.fillRect(left, top + i * ch - 0.5, m.c * cw, 1);
    }
    g.font = FONT; g.textBaseline = 'middle';
    if (cw >= 36 && ch >= 15) {
      g.textAlign = 'center';
      for (let i = 0; i < m.r; i++)
        for (let j = 0; j < m.c; j++) {
          const v = m.d[i * m.c + j], rgb = colour(this.sc, v);
          g.fillStyle = darkOn(rgb) ? '#fff' : '#1f2933';
          g.fillText(cellText(v), left + (j + 0.5) * cw, top + (i + 0.5) * ch);
        }
    }
    /* Labels, skipping those that would overlap (hover shows every one). */
    g.fillStyle = '#3e4c59'; g.textAlign = 'right';
    const rs = Math.ceil(12 / ch);
    for (let i = 0; i < m.r; i += rs) g.fillText(clip(label(this.rl, i)), left - 5, top + (i + 0.5) * ch);
    const cs = this.rot ? Math.ceil(11 / (cw * 0.71)) : 1;
    for (let j = 0; j < m.c; j += cs) {
      const x = left + (j + 0.5) * cw, t = clip(label(this.cl, j));
      if (this.rot) {
        g.save(); g.translate(x, top - 4); g.rotate(-Math.PI / 4); g.textAlign = 'left';
        g.fillText(t, 0, 0); g.restore();
      } else { g.textAlign = 'center'; g.fillText(t, x, top - 8); }
    }
  }
  selRows() {
    const sel = state.sel;
    if (!sel || !TOKEN_AXES[this.m.rowAxis] && this.s >= 0) return [];
    if (sel.s === this.s) return sel.i < this.m.r ? [sel.i] : [];
    const out = [];
    for (let i = 0; i < this.m.r && i < this.rl.length; i++) if (this.rl[i] === sel.tok) out.push(i);
    return out;
  }
  pill(g, text, x, y, align) {
    g.font = BOLD;
    const w = g.measureText(text).width + 8, x0 = align === 'right' ? x - w : align === 'center' ? x - w / 2 : x;
    g.fillStyle = '#1f2933'; g.fillRect(x0, y - 8, w, 16);
    g.fillStyle = '#fff'; g.textAlign = 'left'; g.textBaseline = 'middle'; g.fillText(text, x0 + 4, y);
  }
  paint() {
    const g = this.canvas.getContext('2d'), { m, cw, ch, left, top } = this;
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.drawImage(this.base, 0, 0);
    g.setTransform(DPR, 0, 0, DPR, 0, 0);
    for (const i of this.selRows()) {
      const y = top + i * ch;
      g.fillStyle = 'rgba(217, 119, 6, 0.16)'; g.fillRect(0, y, left - 2, ch);
      g.strokeStyle = '#d97706'; g.lineWidth = 2;
      g.strokeRect(left - 1, y - 1, m.c * cw + 2, ch + 2);
      if (ch < 12) this.pill(g, label(this.rl, i), left - 4, Math.max(top + 8, y + ch / 2), 'right');
    }
    const h = this.hover;
    if (h) {
      if (h.j >= 0) {
        g.strokeStyle = '#1f2933'; g.lineWidth = 1.5;
        g.strokeRect(left + h.j * cw - 0.75, top + h.i * ch - 0.75, cw + 1.5, ch + 1.5);
        this.pill(g, clip(label(this.cl, h.j)), Math.min(left + (h.j + 0.5) * cw, this.W - 40), Math.max(8, top - 10), 'center');
      }
      this.pill(g, clip(label(this.rl, h.i)), left - 4, top + (h.i + 0.5) * ch, 'right');
    }
  }
  at(e) {
    const r = this.canvas.getBoundingClientRect(), x = e.clientX - r.left, y = e.clientY - r.top;
    const i = Math.floor((y - this.top) / this.ch), j = Math.floor((x - this.left) / this.cw);
    if (i < 0 || i >= this.m.r) return null;
    if (x < this.left) return { i, j: -1 };
    if (j < 0 || j >= this.m.c) return null;
    return { i, j };
  }
  move(e) {
    const h = this.at(e);
    if (!h) { if (this.hover) { this.hover = null; this.paint(); } hideTip(); return; }
    if (!this.hover || this.hover.i !== h.i || this.hover.j !== h.j) { this.hover = h; this.paint(); }
    const rowName = label(this.rl, h.i);
    showTip(e, h.j < 0 ? '<div class="h">' + esc(rowName) + '</div><div class="m">click to highlight this row everywhere</div>'
      : this.spec.explain(this.s, h.i, h.j, this.m));
  }
  click(e) {
    const h = this.at(e);
    if (!h) return;
    if (this.s < 0) { selectToken(-1, h.i, label(this.rl, h.i)); return; }
    if (!TOKEN_AXES[this.m.rowAxis]) return;
    selectToken(this.s, h.i, label(this.rl, h.i));
  }
}

function legend(sc) {
  const W = 212, Hh = 27, cv = document.createElement('canvas');
  cv.className = 'legend'; cv.width = W * DPR; cv.height = Hh * DPR;
  cv.style.width = W + 'px'; cv.style.height = Hh + 'px';
  const g = cv.getContext('2d');
  g.scale(DPR, DPR);
  g.font = FONT; g.fillStyle = '#616e7c'; g.textBaseline = 'top';
  if (sc.kind === 'mask') {
    g.fillStyle = 'rgb(250,250,250)'; g.fillRect(0, 2, 14, 10); g.strokeStyle = '#cbd2d9'; g.strokeRect(0.5, 2.5, 13, 9);
    g.fillStyle = 'rgb(' + MASKED + ')'; g.fillRect(108, 2, 14, 10);
    g.fillStyle = '#616e7c'; g.fillText('0: may attend', 18, 2); g.fillText('\u2212\u221e: masked', 126, 2);
    return cv;
  }
  const x0 = 4, bw = 200;
  for (let x = 0; x < bw; x++) {
    const v = sc.lo + (sc.hi - sc.lo) * x / (bw - 1);
    g.fillStyle = 'rgb(' + colour(sc, v) + ')'; g.fillRect(x0 + x, 2, 1, 10);
  }
  g.strokeStyle = '#cbd2d9'; g.strokeRect(x0 + 0.5, 2.5, bw - 1, 9);
  g.fillStyle = '#616e7c';
  const tick = (v, x, al) => { g.textAlign = al; g.fillText(short(v), x, 15); g.fillRect(x - 0.5, 12, 1, 3); };
  tick(sc.lo, x0, 'left'); tick(sc.hi, x0 + bw, 'right');
  if (sc.kind === 'div') tick(0, x0 + bw / 2, 'center');
  return cv;
}

