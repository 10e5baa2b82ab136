// stream.mjs: the console's server-sent-event stream, read with fetch() so that the
// API key can go in an Authorization header (EventSource cannot send one).

// AuthError is thrown when the server wants the API key.
export class AuthError extends Error {}

// openStream reads the event stream at url and calls onSnapshot with every snapshot,
// until the server ends it (it resolves) or signal aborts it (it rejects AbortError).
export async function openStream(url, key, onSnapshot, signal) {
  const headers = key ? { Authorization: 'Bearer ' + key } : {};
  const res = await fetch(url, { headers, signal, cache: 'no-store', credentials: 'omit' });
  if (res.status === 401) throw new AuthError('the API key is missing or wrong');
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = block.split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data) onSnapshot(JSON.parse(data));
    }
  }
}
