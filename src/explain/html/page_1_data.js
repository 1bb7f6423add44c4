(() => {
'use strict';
/* Everything is drawn from the JSON in #attn-data: the library's float32
 * values, kept as they are. The page only recomputes when a toggle leaves its
 * initial state, and says so. */
const T0 = performance.now();
const body = document.body;
let errors = 0;
window.addEventListener('error', () => { body.dataset.errors = String(++errors); });

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const dataEl = document.getElementById('attn-data');
const dataText = dataEl.textContent;
const data = JSON.parse(dataText);
/* A large page: drop the DOM's copy of the JSON (tens of MB) once parsed;
 * the page source still holds it. */
if (dataText.length > (4 << 20)) {
  dataEl.textContent = '{"note":"parsed and removed from the live page to save memory; see the page source"}';
}
const T1 = performance.now();
const H = data.num_heads | 0;
const seqs = data.sequences;
const NS = seqs.length;
const NAMES = 'AB';
const fr = Math.fround;

/* ---- the embedded matrices ------------------------------------------ */
function decode(m) {
  if (m.dec) return m.dec;
  const r = m.shape[0], c = m.shape[1];
  let d;
  if (typeof m.f32 === 'string') {
    let u8;
    if (Uint8Array.fromBase64) u8 = Uint8Array.fromBase64(m.f32); /* native, fast */
    else {
      const bin = atob(m.f32);
      u8 = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    }
    const n = u8.length;
    if (LE) d = new Float32Array(u8.buffer);
    else {
      const dv = new DataView(u8.buffer);
      d = new Float32Array(n >> 2);
      for (let i = 0; i < d.length; i++) d[i] = dv.getFloat32(4 * i, true);
    }
  } else d = Float32Array.from(m.v);
  if (d.length !== r * c) throw new Error('attn-data: ' + r + 'x' + c + ' matrix holds ' + d.length + ' values');
  m.dec = { r, c, d, rowAxis: m.rows, colAxis: m.cols };
  m.f32 = m.v = null; /* the decoded copy is all we keep */
  return m.dec;
}
function lib(s, name) { const m = seqs[s].matrices[name]; return m ? decode(m) : null; }
function labelsOf(s, axis) { return (axis && seqs[s].labels[axis]) || []; }
function label(arr, i) { return i < arr.length ? arr[i] : String(i); }
function scalar(s, name, dflt) { const v = seqs[s].scalars[name]; return typeof v === 'number' ? v : dflt; }
function ntok(s) { return lib(s, 'embeddings').r; }
function prefixes() { const p = []; for (let h = 0; h < Math.max(H, 1); h++) p.push(H ? 'head' + h + '.' : ''); return p; }

/* ---- toggles: scale, causal mask --------------------------------------- */
function dk(s, p) { return (H ? lib(s, p + 'q') : lib(s, 'embeddings')).c; }
function libScale(s, p) { return scalar(s, p + 'scale', NaN); }
/* The factor "scale on" applies: the library's own, or 1/sqrt(d) if it ran unscaled. */
function scaleOn(s, p) { const v = libScale(s, p); return v === v && v !== 1 ? v : fr(1 / Math.sqrt(dk(s, p))); }
function isCausal(s, p) {
  const m = lib(s, p + 'mask');
  if (!m) return false;
  if (m.causal !== undefined) return m.causal;
  const n = ntok(s);
  let ok = true;
  for (let i = 0; ok && i < m.r; i++)
    for (let j = 0; j < m.c; j++)
      if (m.d[i * m.c + j] !== (j < n && j > i ? -Infinity : 0)) { ok = false; break; }
  return (m.causal = ok);
}
const P0 = H ? 'head0.' : '';
const init = { scale: !(libScale(0, P0) === 1), causal: isCausal(0, P0) };
const state = { scale: init.scale, causal: init.causal, head: 0, sel: null };
function isLib() { return state.scale === init.scale && state.causal === init.causal; }

/* ---- recomputation (only when a toggle differs from the library's run) --- */
function mat(r, c, rowAxis, colAxis, d) { return { r, c, d: d || new Float32Array(r * c), rowAxis, colAxis }; }
function computeSeq(s, st) {
  const out = {}, n = ntok(s), x = lib(s, 'embeddings');
  for (const p of prefixes()) {
    const sc = lib(s, p + 'scores'), L = sc.r, S = sc.c;
    const f = (st.scale ? scaleOn(s, p) : 1) / scalar(s, p + 'temperature', 1);
    const scaled = mat(L, S, 'query', 'key');
    for (let i = 0; i < L * S; i++) scaled.d[i] = fr(sc.d[i] * f);
    out[p + 'scaled'] = scaled;
    const lm = lib(s, p + 'mask'), base = lm && !isCausal(s, p) ? lm : null;
    let mask = base;
    if (st.causal) {
      mask = mat(L, S, 'query', 'key');
      for (let i = 0; i < L; i++)
        for (let j = 0; j < S; j++)
          mask.d[i * S + j] = j < n && j > i ? -Infinity : base ? base.d[i * S + j] : 0;
    }
    if (mask) out[p + 'mask'] = mask;
    const att = mat(L, S, 'query', 'key'), row = new Float64Array(S);
    for (let i = 0; i < L; i++) {
      let m = -Infinity;
      for (let j = 0; j < S; j++) {
        row[j] = mask ? fr(scaled.d[i * S + j] + mask.d[i * S + j]) : scaled.d[i * S + j];
        if (row[j] > m) m = row[j];
      }
      if (m === -Infinity) continue; /* nothing to attend to: zeros */
      let sum = 0;
      for (let j = 0; j < S; j++) sum += (row[j] = Math.exp(row[j] - m));
      for (let j = 0; j < S; j++) att.d[i * S + j] = fr(row[j] / sum);
    }
    out[p + 'attention'] = att;
    const v = H ? lib(s, p + 'v') : x, dv = v.c, o = mat(L, dv, 'query', 'value_dim');
    for (let i = 0; i < L; i++)
      for (let c = 0; c < dv; c++) {
        let acc = 0;
        for (let j = 0; j < S; j++) acc += att.d[i * S + j] * v.d[j * dv + c];
        o.d[i * dv + c] = fr(acc);
      }
    out[p + 'output'] = o;
  }
  if (H) {
    const first = out['head0.output'], L = first.r, dv = first.c, cw = H * dv;
    const concat = mat(L, cw, 'query', 'concat_dim');
    for (let h = 0; h < H; h++) {
      const o = out['head' + h + '.output'];
      for (let i = 0; i < L; i++) for (let c = 0; c < dv; c++) concat.d[i * cw + h * dv + c] = o.d[i * dv + c];
    }
    out.concat = concat;
    const w = lib(s, 'w_o'), b = lib(s, 'b_o'), od = w.r, y = mat(L, od, 'query', 'out_dim');
    for (let i = 0; i < L; i++)
      for (let k = 0; k < od; k++) {
        let acc = 0;
        for (let c = 0; c < cw; c++) acc += concat.d[i * cw + c] * w.d[k * cw + c];
        y.d[i * od + k] = b ? fr(fr(acc) + b.d[k]) : fr(acc);
      }
    out.output = y;
  }
  return out;
}
let computed = null;
function view(s, name) {
  if (isLib()) return lib(s, name);
  if (!computed) computed = seqs.map((_, i) => computeSeq(i, state));
  const c = computed[s];
  if (name in c) return c[name];
  if (/(^|\.)mask$/.test(name)) return null; /* the toggles removed it */
  return lib(s, name);
}

/* ---- numbers --------------------------------------------------------- */
/* The shortest decimal that reads back as the same float32 (as the library prints). */
function full(v) {
  if (v === -Infinity) return '\u2212\u221e';
  if (v === Infinity) return '\u221e';
  if (v !== v) return 'NaN';
  for (let p = 1; p <= 9; p++) { const t = v.toPrecision(p); if (fr(+t) === fr(v)) return String(+t); }
  return String(v);
}
function short(v) {
  if (v === -Infinity) return '\u2212\u221e';
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return String(+v.toPrecision(4));
}
function cellText(v) {
  if (v === -Infinity) return '\u2212\u221e';
  const a = Math.abs(v);
  if (a >= 999.5) return v.toExponential(0);
  if (a >= 99.5) return v.toFixed(0);
  const t = v.toFixed(2);
  return t === '-0.00' ? '0.00' : t;
}
function esc(s) { return String(s).replace(/[&<>"]/g, ch => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch]); }

