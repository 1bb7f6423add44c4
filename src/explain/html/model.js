(() => {
'use strict';
/* The maps of #attn-model: per layer and head a lower triangle (or whole
 * rows) of attention weights as little-endian 8- or 16-bit fractions in
 * base64. Thumbnails are drawn when they scroll into view, the full map when
 * one is chosen: a 1,024-token text through 144 heads never becomes DOM. The
 * page computes nothing but colours and the fractions' decimal value. */
const body = document.body;
let errors = 0;
window.addEventListener('error', () => { body.dataset.errors = String(++errors); });
const el = document.getElementById('attn-model');
const src = el.textContent;
const D = JSON.parse(src);
if (src.length > (4 << 20)) el.textContent = '{"note":"parsed and removed from the live page; see the page source"}';
const T = D.tokens.length, TOP = D.bits === 16 ? 65535 : 255, THUMB = 64;
const app = document.getElementById('app'), tip = document.getElementById('tip');

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  for (const c of kids) e.append(c);
  return e;
}
/* A token as shown: GPT-2's leading space as a visible middle dot, newlines as ↵. */
const show = (t) => t.replace(/ /g, '\u00b7').replace(/\n/g, '\u21b5').replace(/\t/g, '\u21e5');

/* The map of layer index li, head index hi as a function (i, j) -> weight code. */
function decode(li, hi) {
  const bin = atob(D.maps[li][hi]);
  const n = bin.length / (D.bits / 8);
  const codes = D.bits === 16 ? new Uint16Array(n) : new Uint8Array(n);
  if (D.bits === 16) for (let k = 0; k < n; k++) codes[k] = bin.charCodeAt(2 * k) | (bin.charCodeAt(2 * k + 1) << 8);
  else for (let k = 0; k < n; k++) codes[k] = bin.charCodeAt(k);
  const at = D.tri ? (i, j) => (j > i ? 0 : codes[i * (i + 1) / 2 + j]) : (i, j) => codes[i * T + j];
  return at;
}

/* White to dark blue: darker is more weight. */
function paint(ctx, size, at, step) {
  const img = ctx.createImageData(size, size), px = img.data;
  for (let y = 0; y < size; y++) {
    const i0 = Math.floor(y * step), i1 = Math.max(i0 + 1, Math.floor((y + 1) * step));
    for (let x = 0; x < size; x++) {
      const j0 = Math.floor(x * step), j1 = Math.max(j0 + 1, Math.floor((x + 1) * step));
      let m = 0; /* a pixel over several cells shows the largest */
      for (let i = i0; i < i1 && i < T; i++) for (let j = j0; j < j1 && j < T; j++) { const c = at(i, j); if (c > m) m = c; }
      const u = m / TOP, o = 4 * (y * size + x);
      px[o] = Math.round(255 - 227 * u); px[o + 1] = Math.round(255 - 196 * u); px[o + 2] = Math.round(255 - 120 * u); px[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

let drawnThumbs = 0;
function drawThumb(c) {
  if (c.dataset.drawn) return;
  const size = Math.min(T, THUMB);
  c.width = size; c.height = size;
  paint(c.getContext('2d'), size, decode(+c.dataset.li, +c.dataset.hi), T / size);
  c.dataset.drawn = '1';
  body.dataset.thumbsDrawn = String(++drawnThumbs);
}

const nl = D.layers.length, nh = D.heads.length;
const head = h('header', null, h('h1', null, 'Attention of every layer and head'),
  h('p', null, `${D.title}: ${T} tokens, ${nl} of ${D.n_layers} layers \u00d7 ${nh} of ${D.n_heads} heads. ` +
    'Each thumbnail is one head\u2019s map (rows: queries, columns: keys; darker = more weight). Click one for the full map.'));
const text = h('div', {class: 'text'});
D.tokens.forEach((t, i) => text.append(h('span', {title: `token ${i}, id ${D.ids[i]}`}, show(t))));
const grid = h('div', {class: 'grid', role: 'grid'});
grid.style.gridTemplateColumns = `auto repeat(${nh}, ${THUMB + 4}px)`;
grid.append(h('span', {class: 'lab'}, ''));
D.heads.forEach((hd) => grid.append(h('span', {class: 'lab'}, `head ${hd}`)));
const canvases = [];
D.layers.forEach((ly, li) => {
  grid.append(h('span', {class: 'lab'}, `layer ${ly}`));
  D.heads.forEach((hd, hi) => {
    const c = h('canvas', {'data-li': li, 'data-hi': hi, width: 1, height: 1});
    const b = h('button', {title: `layer ${ly}, head ${hd}`, 'aria-label': `layer ${ly} head ${hd}`}, c);
    b.addEventListener('click', () => open(li, hi));
    canvases.push(c);
    grid.append(b);
  });
});
const detail = h('div', {class: 'detail'}, h('p', {class: 'note'}, 'Choose a head.'));
app.append(head, text, h('div', {class: 'layout'}, grid, detail));

if ('IntersectionObserver' in window) {
  const io = new IntersectionObserver((es) => es.forEach((e) => { if (e.isIntersecting) { drawThumb(e.target); io.unobserve(e.target); } }),
    {rootMargin: '200px'});
  /* The first screen is drawn at once (an observer's first callback may
   * come late, e.g. in a headless browser that saves the page); the rest
   * when it scrolls near. */
  const near = (c) => { const r = c.getBoundingClientRect(); return r.top < innerHeight + 200 && r.bottom > -200; };
  canvases.forEach((c) => (near(c) ? drawThumb(c) : io.observe(c)));
} else canvases.forEach(drawThumb);

let current = null; /* the open map: [layer index, head index] */
function open(li, hi) {
  const at = decode(li, hi);
  grid.querySelectorAll('button.on').forEach((b) => b.classList.remove('on'));
  canvases[li * nh + hi].parentNode.classList.add('on');
  const cell = Math.max(1, Math.min(24, Math.floor(720 / T)));
  const size = Math.min(T * cell, 1024), step = T / Math.min(T, 1024);
  const c = h('canvas');
  c.width = size; c.height = size;
  const ctx = c.getContext('2d');
  if (cell > 1) {
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
      const u = at(i, j) / TOP;
      ctx.fillStyle = `rgb(${Math.round(255 - 227 * u)},${Math.round(255 - 196 * u)},${Math.round(255 - 120 * u)})`;
      ctx.fillRect(j * cell, i * cell, cell, cell);
    }
  } else paint(ctx, size, at, step);
  const labels = cell >= 12;
  const q = h('div', {class: 'queries'}), k = h('div', {class: 'keys'});
  if (labels) {
    q.style.paddingTop = '0';
    D.tokens.forEach((t) => { const s = h('span', null, show(t)); s.style.height = s.style.lineHeight = cell + 'px'; q.append(s); });
    D.tokens.forEach((t) => { const s = h('span', null, show(t)); s.style.width = cell + 'px'; k.append(s); });
    k.style.marginLeft = '0';
  }
  const row = h('div', {class: 'maprow'}, q, h('div', null, c, k));
  detail.replaceChildren(h('h2', null, `Layer ${D.layers[li]}, head ${D.heads[hi]}`),
    h('p', {class: 'note'}, `Rows are queries, columns keys; each row sums to 1. Hover a cell for the tokens and the weight (stored to ${D.bits === 16 ? '0.00001' : '0.002'}; the JSON and CSV exports hold every float).`),
    row);
  const px = size / T;
  c.addEventListener('mousemove', (e) => {
    const r = c.getBoundingClientRect();
    const i = Math.min(T - 1, Math.floor((e.clientY - r.top) / (r.height / T)));
    const j = Math.min(T - 1, Math.floor((e.clientX - r.left) / (r.width / T)));
    tip.textContent = `query ${i} \u201c${show(D.tokens[i])}\u201d \u2192 key ${j} \u201c${show(D.tokens[j])}\u201d: ${(at(i, j) / TOP).toFixed(D.bits === 16 ? 4 : 3)}`;
    tip.style.display = 'block';
    tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
    text.querySelectorAll('span.q').forEach((s) => s.classList.remove('q'));
    if (text.children[i]) text.children[i].classList.add('q');
  });
  c.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
  current = [li, hi];
  body.dataset.detail = `${D.layers[li]},${D.heads[hi]}`;
  body.dataset.detailPx = String(px);
  /* how much of the map is inked: a check that something was drawn */
  const d = ctx.getImageData(0, 0, size, size).data;
  let ink = 0;
  for (let o = 0; o < d.length; o += 4) if (d[o] < 250) ink++;
  body.dataset.detailInk = String(ink / (size * size));
}

/* #layer,head opens that map (tests, links) */
const m = /^#(\d+),(\d+)$/.exec(location.hash);
const li0 = m ? D.layers.indexOf(+m[1]) : 0, hi0 = m ? D.heads.indexOf(+m[2]) : 0;
if (li0 >= 0 && hi0 >= 0) open(li0, hi0);
body.dataset.ready = '1';
})();
