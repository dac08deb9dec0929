// The session WebSocket with reconnection: authenticates in its first
// message, resumes from the last sequence number it handled, and hands
// every stored event to the page exactly once.

export class SessionStream {
  constructor(sessionId, token, handlers) {
    this.sessionId = sessionId;
    this.token = token;
    this.handlers = handlers; // {onFrame, onState('connecting'|'open'|'lost')}
    this.lastSeq = 0;
    this.closed = false;
    this.retry = 0;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/sessions/${this.sessionId}/ws?after=${this.lastSeq}`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.token }));
    ws.onmessage = (msg) => {
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (frame.kind === "snapshot") {
        this.retry = 0;
        this.handlers.onState("open");
      }
      if (typeof frame.seq === "number") {
        if (frame.seq <= this.lastSeq) return; // already shown
        this.lastSeq = frame.seq;
      }
      this.handlers.onFrame(frame);
    };
    ws.onclose = () => {
      if (this.closed || this.ws !== ws) return;
      this.handlers.onState("lost");
      const delay = Math.min(5000, 300 * 2 ** this.retry++);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  send(message) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /// Drops the socket as if the network failed (the page's tests use it).
  drop() {
    this.ws?.close();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close();
  }
}
