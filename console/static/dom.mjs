// dom.mjs: building elements from data without innerHTML, so that nothing a client
// sends (topic names, payloads, presence metas) is ever parsed as HTML.

// el returns a new element with attributes (class, data-*, hidden...) and children
// (strings become text nodes; null and undefined are skipped).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c == null) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// replaceRows swaps a tbody's or list's children for rows.
export function replaceRows(parent, rows) {
  parent.replaceChildren(...rows);
}

// time formats unix milliseconds as HH:MM:SS.mmm, local time.
export function time(ms) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// rate formats a per-second rate briefly.
export function rate(v) {
  if (!v) return '0';
  if (v >= 1000) return (v / 1000).toFixed(1) + 'k';
  if (v >= 10) return Math.round(v).toString();
  return v.toFixed(1);
}
