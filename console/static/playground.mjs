// playground.mjs: connect with params, join topics, push events, and see every frame.

import { Socket } from './phx.mjs';
import { el, time } from './dom.mjs';

const MAX_LOG = 500; // frames kept in the log
const SECRET = /token|password|secret|key/i; // params whose values are not shown

const $ = (id) => document.getElementById(id);

let socket = null;

// parse reads a JSON object from an input, or reports why not in the log.
function parse(input, what) {
  try {
    const v = JSON.parse(input.value || '{}');
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    input.setCustomValidity('');
    return v;
  } catch (e) {
    input.setCustomValidity(`${what}: ${e.message}`);
    input.reportValidity();
    return null;
  }
}

// log adds a line to the frame log: dir is "in", "out" or "info".
function log(dir, text) {
  const list = $('pg-log');
  const arrow = { in: '←', out: '→', info: '·' }[dir];
  list.append(el('li', { 'data-dir': dir }, el('span', { class: 'muted' }, time(Date.now())),
    el('span', { class: 'dir' }, arrow), el('span', { class: 'frame' }, text)));
  while (list.children.length > MAX_LOG) list.firstChild.remove();
  list.scrollTop = list.scrollHeight;
}

// maskedURL is the socket URL as shown: secret params' values masked.
function maskedURL(u) {
  const shown = new URL(u);
  for (const k of [...shown.searchParams.keys()]) {
    if (SECRET.test(k)) shown.searchParams.set(k, '[FILTERED]');
  }
  return shown.pathname + shown.search;
}

function connect() {
  if (socket && socket.ws && socket.ws.readyState <= WebSocket.OPEN) {
    socket.disconnect();
    return;
  }
  const params = parse($('pg-params'), 'params');
  if (!params) return;
  $('pg-channels').replaceChildren();
  socket = new Socket('/socket/websocket', {
    params,
    onFrame: log,
    onState: (s) => {
      $('pg-state').textContent = s;
      $('pg-connect').textContent = s === 'open' || s === 'connecting' ? 'Disconnect' : 'Connect';
      if (s === 'connecting') log('info', 'connecting to ' + maskedURL(socket.url()));
    },
  });
  socket.connect();
}

async function join() {
  if (!socket || !socket.isOpen()) {
    log('info', 'connect first');
    return;
  }
  const topic = $('pg-topic').value.trim();
  const payload = parse($('pg-join-payload'), 'payload');
  if (!topic || !payload) return;
  const ch = socket.channel(topic, payload);
  $('pg-channels').append(channelCard(ch));
  await ch.join();
}

// channelCard is a joined channel's controls: push an event, leave.
function channelCard(ch) {
  const state = el('span', { class: 'state' }, ch.state);
  ch.onState = (s) => {
    state.textContent = s;
    state.className = 'state state-' + s;
  };
  const event = el('input', { class: 'mono pg-event', value: 'new:msg', autocomplete: 'off' });
  const payload = el('input', { class: 'mono pg-payload', value: '{"uid": "console", "body": "hello"}', autocomplete: 'off' });
  const card = el('div', { class: 'channel', 'data-topic': ch.topic },
    el('div', { class: 'head' }, el('b', {}, ch.topic), state,
      el('button', { type: 'button', class: 'small pg-leave', onclick: () => ch.leave().then(() => card.remove()) }, 'leave')),
    el('div', { class: 'row' },
      el('label', {}, 'event', event),
      el('label', { class: 'grow' }, 'payload', payload),
      el('button', {
        type: 'button', class: 'pg-push', onclick: () => {
          const p = parse(payload, 'payload');
          if (p) ch.push(event.value.trim(), p);
        },
      }, 'Push')));
  return card;
}

// initPlayground wires the playground's controls.
export function initPlayground() {
  $('pg-connect').addEventListener('click', connect);
  $('pg-join').addEventListener('click', join);
  $('pg-clear').addEventListener('click', () => $('pg-log').replaceChildren());
}
