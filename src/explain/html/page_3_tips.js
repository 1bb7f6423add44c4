/* ---- tooltips: how each number was obtained ---------------------------- */
const tip = document.getElementById('tip');
function showTip(e, html) {
  tip.innerHTML = html; tip.style.display = 'block';
  const w = tip.offsetWidth, h = tip.offsetHeight;
  let x = e.clientX + 16, y = e.clientY + 16;
  if (x + w > window.innerWidth - 4) x = Math.max(4, e.clientX - w - 16);
  if (y + h > window.innerHeight - 4) y = Math.max(4, e.clientY - h - 16);
  tip.style.left = x + 'px'; tip.style.top = y + 'px';
}
function hideTip() { tip.style.display = 'none'; }
const TERMS = 4;
/* "a*b + c*d + ... (n terms)" for a dot product. */
function dotTerms(a, ai, b, bi, n, bstride) {
  const parts = [];
  for (let k = 0; k < n && k < TERMS; k++) parts.push(short(a[ai + k]) + '\u00d7' + short(b[bi + k * bstride]));
  return parts.join(' + ') + (n > TERMS ? ' + \u2026 <span class="m">(' + n + ' terms)</span>' : '');
}
function head(s, name, i, j, m, rl, cl) {
  return '<div class="h">' + (s >= 0 ? NAMES[s] + ' \u00b7 ' : '') + esc(name) + ' [' + esc(label(rl, i)) + ', ' + esc(label(cl, j)) +
    '] = <span class="v">' + full(m.d[i * m.c + j]) + '</span></div>';
}
function baseName(name) { return name.replace(/^head\d+\./, ''); }
function prefixOf(name) { const k = name.match(/^head\d+\./); return k ? k[0] : ''; }
function explain(s, name, i, j, m) {
  const rl = labelsOf(s, m.rowAxis), cl = labelsOf(s, m.colAxis), v = m.d[i * m.c + j];
  const p = prefixOf(name), b = baseName(name), hv = head(s, name, i, j, m, rl, cl);
  const lines = [];
  if (b === 'embeddings') {
    lines.push('the input embedding of \u201c' + esc(label(rl, i)) + '\u201d, dimension \u201c' + esc(label(cl, j)) + '\u201d');
  } else if (b === 'q' || b === 'k' || b === 'v') {
    const w = lib(s, p + 'w_' + b), bias = lib(s, p + 'b_' + b), x = lib(s, 'embeddings');
    if (w && i < x.r) {
      lines.push(b.toUpperCase() + ' = X \u00b7 W<sub>' + b.toUpperCase() + '</sub>\u1d40' + (bias ? ' + b' : '') + ': \u03a3<sub>d</sub> x[' + esc(label(rl, i)) + ', d] \u00b7 w[' + esc(label(cl, j)) + ', d]');
      lines.push('= ' + dotTerms(x.d, i * x.c, w.d, j * w.c, x.c, 1) + (bias ? ' + ' + short(bias.d[j]) : '') + ' = ' + full(v));
    } else lines.push('a position the layer adds (bias_k / zero attention): a learned or zero vector');
  } else if (b === 'scores') {
    const q = H ? view(s, p + 'q') : lib(s, 'embeddings'), k = H ? view(s, p + 'k') : q, d = q.c;
    const qn = H ? 'q' : 'x', kn = H ? 'k' : 'x';
    lines.push('dot product ' + qn + '<sub>' + esc(label(rl, i)) + '</sub> \u00b7 ' + kn + '<sub>' + esc(label(cl, j)) + '</sub> = \u03a3<sub>d</sub> ' + qn + '[i,d]\u00b7' + kn + '[j,d]');
    lines.push('= ' + dotTerms(q.d, i * d, k.d, j * d, d, 1) + ' = ' + full(v));
  } else if (b === 'scaled') {
    const sc = lib(s, p + 'scores').d[i * m.c + j], t = scalar(s, p + 'temperature', 1);
    const f = isLib() ? libScale(s, p) : state.scale ? scaleOn(s, p) : 1;
    lines.push('score \u00d7 scale' + (t !== 1 ? ' \u00f7 temperature' : '') + ' = ' + short(sc) + ' \u00d7 ' + full(f) +
      (f !== 1 && Math.abs(f - 1 / Math.sqrt(dk(s, p))) < 1e-7 ? ' <span class="m">(1/\u221a' + dk(s, p) + ')</span>' : '') +
      (t !== 1 ? ' \u00f7 ' + full(t) : '') + ' = ' + full(v));
  } else if (b === 'mask') {
    lines.push(v === -Infinity ? 'masked: \u2212\u221e is added to the scaled score, so its exp is 0 and it gets no attention'
      : v === 0 ? 'may attend: 0 is added to the scaled score' : 'added to the scaled score');
  } else if (b === 'attention') {
    const sc = view(s, p + 'scaled'), mk = view(s, p + 'mask'), S = sc.c;
    const row = new Float64Array(S);
    let mx = -Infinity;
    for (let c = 0; c < S; c++) { row[c] = mk ? fr(sc.d[i * S + c] + mk.d[i * S + c]) : sc.d[i * S + c]; if (row[c] > mx) mx = row[c]; }
    const e = new Float64Array(S);
    let sum = 0;
    if (mx !== -Infinity) for (let c = 0; c < S; c++) sum += (e[c] = Math.exp(row[c] - mx));
    const show = [];
    for (let c = 0; c < S && show.length < 6; c++) show.push(c);
    if (show.indexOf(j) < 0) { show.pop(); show.push(j); }
    let t = '<table><tr><th>key</th>' + show.map(c => '<td' + (c === j ? ' class="me"' : '') + '>' + esc(clip(label(cl, c))) + '</td>').join('') + (S > show.length ? '<td>\u2026</td>' : '') + '</tr>';
    t += '<tr><th>s' + (mk ? ' (+mask)' : '') + '</th>' + show.map(c => '<td' + (c === j ? ' class="me"' : '') + '>' + short(row[c]) + '</td>').join('') + (S > show.length ? '<td></td>' : '') + '</tr>';
    t += '<tr><th>exp(s\u2212max)</th>' + show.map(c => '<td' + (c === j ? ' class="me"' : '') + '>' + short(e[c]) + '</td>').join('') + (S > show.length ? '<td></td>' : '') + '</tr></table>';
    lines.push('softmax of row \u201c' + esc(label(rl, i)) + '\u201d of the scaled scores' + (mk ? ' plus the mask' : '') + (S > show.length ? ' <span class="m">(' + S + ' keys)</span>' : ''));
    lines.push(t);
    if (mx === -Infinity) lines.push('every key is masked: the row is all zeros');
    else {
      lines.push('max = ' + short(mx) + ', \u03a3 exp(s\u2212max) = ' + short(sum));
      lines.push('exp(' + short(row[j]) + ' \u2212 ' + short(mx) + ') / ' + short(sum) + ' = ' + short(e[j]) + ' / ' + short(sum) + ' = ' + full(v));
    }
  } else if (b === 'output' && (p || !H)) {
    const a = view(s, p + 'attention'), vv = H ? lib(s, p + 'v') : lib(s, 'embeddings'), S = a.c;
    lines.push('weighted sum of the value vectors: \u03a3<sub>j</sub> attention[' + esc(label(rl, i)) + ', j] \u00b7 v[j, ' + esc(label(cl, j)) + ']');
    lines.push('= ' + dotTerms(a.d, i * S, vv.d, j, S, vv.c) + ' = ' + full(v));
  } else if (b === 'concat') {
    const dv = m.c / H, h = Math.floor(j / dv);
    lines.push('head ' + h + '\u2019s output [' + esc(label(rl, i)) + ', ' + (j % dv) + ']: the heads side by side');
  } else if (b === 'output') {
    const c = view(s, 'concat'), w = lib(s, 'w_o'), bo = lib(s, 'b_o');
    lines.push('concat \u00b7 W<sub>O</sub>\u1d40' + (bo ? ' + b<sub>O</sub>' : '') + ': \u03a3<sub>c</sub> concat[' + esc(label(rl, i)) + ', c] \u00b7 w<sub>O</sub>[' + esc(label(cl, j)) + ', c]');
    lines.push('= ' + dotTerms(c.d, i * c.c, w.d, j * w.c, c.c, 1) + (bo ? ' + ' + short(bo.d[j]) : '') + ' = ' + full(v));
  }
  return hv + lines.map(l => '<div>' + l + '</div>').join('');
}

/* ---- the difference of the outputs of shared tokens ------------------------ */
function sharedTokens() {
  if (NS < 2) return [];
  const ta = labelsOf(0, 'token'), tb = labelsOf(1, 'token'), out = [];
  ta.forEach((t, i) => {
    if (ta.indexOf(t) !== i) return;
    const j = tb.indexOf(t);
    if (j >= 0) out.push({ t, i, j });
  });
  return out;
}
const shared = sharedTokens();
function diffMatrix() {
  const a = view(0, 'output'), b = view(1, 'output'), c = Math.min(a.c, b.c), d = new Float64Array(shared.length * c);
  shared.forEach((x, r) => { for (let k = 0; k < c; k++) d[r * c + k] = a.d[x.i * a.c + k] - b.d[x.j * b.c + k]; });
  return { r: shared.length, c, d, rowAxis: 'shared', colAxis: a.colAxis };
}

