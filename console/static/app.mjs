// app.mjs: the console page. One stream of snapshots (stream.mjs) drives every panel;
// opening a topic or changing the filter reopens the stream with the new question.

import { openStream, AuthError } from './stream.mjs';
import { Chart } from './chart.mjs';
import { el, replaceRows, time, rate } from './dom.mjs';
import { initPlayground } from './playground.mjs';

const KEY = 'luachan.console.key'; // sessionStorage item holding the API key
const SPAN = 300;                  // chart points: five minutes of one-second samples
const RETRY_MS = 1000;             // wait before reopening a broken stream

const $ = (id) => document.getElementById(id);

const view = {
  filter: '',
  topic: '',
  series: [],
  abort: null,
};

const charts = {};

function setStatus(state, text) {
  const s = $('status');
  s.dataset.state = state;
  s.textContent = text;
}

// restart closes the stream, if open, and opens one for the current view.
function restart() {
  if (view.abort) view.abort.abort();
  const abort = new AbortController();
  view.abort = abort;
  const q = new URLSearchParams();
  if (view.filter) q.set('filter', view.filter);
  if (view.topic) q.set('topic', view.topic);
  const key = sessionStorage.getItem(KEY) || '';
  openStream('api/stream?' + q, key, render, abort.signal)
    .then(() => retry(abort, 'stream ended'))
    .catch((err) => {
      if (abort.signal.aborted) return;
      if (err instanceof AuthError) {
        setStatus('error', 'locked');
        $('auth').hidden = false;
        $('main').hidden = true;
        if (key) $('auth-msg').textContent = 'That key was refused.';
        return;
      }
      retry(abort, err.message);
    });
}

function retry(abort, why) {
  if (abort.signal.aborted) return;
  setStatus('error', 'reconnecting: ' + why);
  setTimeout(() => { if (!abort.signal.aborted) restart(); }, RETRY_MS);
}

function render(s) {
  setStatus('live', 'live');
  $('auth').hidden = true;
  $('main').hidden = false;
  $('clock').textContent = 'server time ' + time(s.t);
  renderScripts(s.scripts || []);
  renderTraffic(s.series || []);
  renderTopics(s.topics);
  renderTopic(s.topic);
}

function renderScripts(scripts) {
  replaceRows($('scripts').tBodies[0], scripts.map((f) => {
    let state;
    if (f.error && !f.loaded_at) {
      state = [el('span', { class: 'bad' }, 'failed'), el('span', { class: 'err' }, f.error)];
    } else if (f.error) {
      state = [el('span', { class: 'bad' }, 'failed, previous version serving'), el('span', { class: 'err' }, f.error)];
    } else {
      state = [el('span', { class: 'ok' }, f.socket ? 'loaded (socket.lua: connect)' : 'loaded')];
    }
    for (const w of f.warnings || []) state.push(el('span', { class: 'warn' }, '⚠ ' + w));
    return el('tr', { 'data-file': f.file, 'data-state': f.error ? 'failed' : 'loaded' },
      el('td', { class: 'mono' }, f.file),
      el('td', { class: 'mono' }, f.topic || (f.socket ? '(connect)' : '–')),
      el('td', {}, state),
      el('td', { class: 'muted' }, f.loaded_at ? new Date(f.loaded_at).toLocaleTimeString() : '–'),
      el('td', { class: 'num' }, f.socket ? '' : String(f.channels ?? 0)),
      el('td', { class: 'num' }, rate(f.call_rate)),
      el('td', { class: 'num' + (f.error_rate ? ' bad' : '') }, rate(f.error_rate)));
  }));
}

function renderTraffic(points) {
  const seen = view.series.length ? view.series[view.series.length - 1].t : 0;
  for (const p of points) if (p.t > seen) view.series.push(p);
  if (view.series.length > SPAN) view.series.splice(0, view.series.length - SPAN);
  for (const [name, c] of Object.entries(charts)) c.draw(view.series.map((p) => p[name]), SPAN);
}

function renderTopics(t) {
  if (!t) return;
  $('topic-count').textContent = `${t.matched} ${t.filter ? 'matching' : 'with subscribers'}`;
  replaceRows($('topics').tBodies[0], t.top.map((row) => el('tr', {
    'data-topic': row.topic,
    class: row.topic === view.topic ? 'open' : '',
    onclick: () => openTopic(row.topic),
  }, el('td', { class: 'mono' }, row.topic), el('td', { class: 'num' }, String(row.subscribers)))));
}

function renderTopic(t) {
  $('topic-detail').hidden = !t;
  if (!t) return;
  $('topic-name').textContent = t.name;
  $('topic-subs').textContent = String(t.subscribers);
  const keys = Object.keys(t.presence || {}).sort();
  replaceRows($('presence'), keys.length ? keys.map((k) => el('li', { 'data-key': k },
    el('b', {}, k), ' ', el('span', { class: 'mono muted' }, t.presence[k].metas.map((m) => JSON.stringify(m)).join(' ')))) :
    [el('li', { class: 'muted' }, 'nobody tracked')]);
  replaceRows($('events'), t.events.length ? t.events.map((e) => el('li', {},
    el('span', { class: 'muted' }, time(e.t)), ' ', el('b', {}, e.event), ' ',
    typeof e.payload === 'string' ? e.payload : JSON.stringify(e.payload))) :
    [el('li', { class: 'muted' }, 'none since opened')]);
}

function openTopic(topic) {
  view.topic = topic;
  restart();
}

function init() {
  const c = $('charts');
  charts.conns = new Chart(c, 'conns', 'connections', (v) => String(Math.round(v)));
  charts.joins = new Chart(c, 'joins', 'joins/s', rate);
  charts.in = new Chart(c, 'in', 'messages in/s', rate);
  charts.out = new Chart(c, 'out', 'messages out/s', rate);
  charts.crashes = new Chart(c, 'crashes', 'crashes/s', rate);

  let debounce;
  $('topic-filter').addEventListener('input', (e) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { view.filter = e.target.value.trim(); restart(); }, 250);
  });
  $('topic-close').addEventListener('click', () => openTopic(''));
  $('auth').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $('key').value);
    $('key').value = '';
    $('auth-msg').textContent = '';
    restart();
  });
  initPlayground();
  restart();
}

init();
