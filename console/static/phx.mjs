// phx.mjs: a small Phoenix Channels client (V2 JSON serializer), luachan's own. Frames
// are [join_ref, ref, topic, event, payload]; every frame sent or received is handed to
// onFrame, so the playground shows exactly what goes over the wire.

const HEARTBEAT_MS = 30000; // Phoenix's JS client's default heartbeat interval

// Socket is one WebSocket to the server's Phoenix endpoint.
export class Socket {
  // endPoint is a path like "/socket/websocket"; params become the query string.
  constructor(endPoint, { params = {}, onFrame = () => {}, onState = () => {} } = {}) {
    this.endPoint = endPoint;
    this.params = params;
    this.onFrame = onFrame;
    this.onState = onState;
    this.ref = 0;
    this.pending = new Map(); // ref -> {resolve, channel}
    this.channels = new Set();
    this.ws = null;
    this.heartbeat = null;
  }

  // url returns the WebSocket URL with params and vsn=2.0.0.
  url() {
    const u = new URL(this.endPoint, location.href);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    for (const [k, v] of Object.entries(this.params)) {
      u.searchParams.set(k, typeof v === 'string' ? v : JSON.stringify(v));
    }
    u.searchParams.set('vsn', '2.0.0');
    return u;
  }

  connect() {
    this.onState('connecting');
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      this.onState('open');
      this.heartbeat = setInterval(() => this.send([null, this.makeRef(), 'phoenix', 'heartbeat', {}]), HEARTBEAT_MS);
    };
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => {
      clearInterval(this.heartbeat);
      for (const ch of this.channels) ch.setState('closed');
      this.onState(`closed (${e.code}${e.reason ? ' ' + e.reason : ''})`);
    };
    ws.onerror = () => this.onState('error');
  }

  disconnect() {
    if (this.ws) this.ws.close(1000, 'bye');
  }

  isOpen() {
    return this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  makeRef() {
    this.ref += 1;
    return String(this.ref);
  }

  // send writes a frame; a text frame, as V2 JSON.
  send(frame) {
    if (!this.isOpen()) return false;
    const text = JSON.stringify(frame);
    this.ws.send(text);
    this.onFrame('out', text);
    return true;
  }

  // request sends a frame and returns a promise of its phx_reply's payload.
  request(frame, channel) {
    return new Promise((resolve) => {
      if (!this.send(frame)) {
        resolve({ status: 'error', response: { reason: 'not connected' } });
        return;
      }
      this.pending.set(frame[1], { resolve, channel });
    });
  }

  receive(data) {
    if (typeof data !== 'string') {
      this.onFrame('in', '(binary frame)');
      return;
    }
    this.onFrame('in', data);
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    const [joinRef, ref, topic, event, payload] = msg;
    if (event === 'phx_reply' && this.pending.has(ref)) {
      const p = this.pending.get(ref);
      this.pending.delete(ref);
      p.resolve(payload);
      return;
    }
    for (const ch of this.channels) {
      if (ch.topic === topic && (joinRef == null || joinRef === ch.joinRef)) ch.dispatch(event, payload);
    }
  }

  channel(topic, payload) {
    const ch = new Channel(this, topic, payload);
    this.channels.add(ch);
    return ch;
  }
}

// Channel is one topic joined over a Socket.
export class Channel {
  constructor(socket, topic, payload) {
    this.socket = socket;
    this.topic = topic;
    this.payload = payload;
    this.joinRef = null;
    this.state = 'new';
    this.onState = () => {};
  }

  setState(s) {
    this.state = s;
    this.onState(s);
  }

  async join() {
    this.joinRef = this.socket.makeRef();
    this.setState('joining');
    const reply = await this.socket.request([this.joinRef, this.joinRef, this.topic, 'phx_join', this.payload], this);
    this.setState(reply.status === 'ok' ? 'joined' : 'refused');
    return reply;
  }

  push(event, payload) {
    return this.socket.request([this.joinRef, this.socket.makeRef(), this.topic, event, payload], this);
  }

  async leave() {
    const reply = await this.socket.request([this.joinRef, this.socket.makeRef(), this.topic, 'phx_leave', {}], this);
    this.setState('left');
    this.socket.channels.delete(this);
    return reply;
  }

  dispatch(event) {
    if (event === 'phx_error') this.setState('errored');
    if (event === 'phx_close') this.setState('closed');
  }
}
