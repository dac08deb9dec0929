// The chat page: sessions, the conversation as it streams, tool steps with
// screenshots, session controls, the policy picker, plugins, and the live
// desktop through the host's VNC bridge.

import { api, download, downloadRecording, imageUrl, recordingUrl, token, ApiError } from "./api.js";
import { SessionStream } from "./stream.js";
import { marked } from "marked";
import DOMPurify from "dompurify";
import RFB from "@novnc/novnc";

const $ = (id) => document.getElementById(id);

// Icons as inline SVG: a glyph the system's fonts lack renders as an empty
// box (the delete button did, on a stock Debian).
const ICONS = {
  pencil: "M4 20l1.2-5.2L15.5 4.5l4 4L9.2 18.8 4 20zm12.9-16.9l1.4-1.4a1 1 0 0 1 1.4 0l2.6 2.6a1 1 0 0 1 0 1.4l-1.4 1.4-4-4z",
  trash: "M9 3h6l1 2h4v2H4V5h4l1-2zM6 9h12l-1 12H7L6 9zm4 2v8h1.5v-8H10zm3.5 0v8H15v-8h-1.5z",
  gear: "M10.3 2h3.4l.5 2.6 1.8.8 2.2-1.5 2.4 2.4-1.5 2.2.8 1.8 2.6.5v3.4l-2.6.5-.8 1.8 1.5 2.2-2.4 2.4-2.2-1.5-1.8.8-.5 2.6h-3.4l-.5-2.6-1.8-.8-2.2 1.5-2.4-2.4 1.5-2.2-.8-1.8L2 13.7v-3.4l2.6-.5.8-1.8-1.5-2.2 2.4-2.4 2.2 1.5 1.8-.8.5-2.6zM12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z",
};
const icon = (name) => {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", width: "15", height: "15", fill: "currentColor", "aria-hidden": "true", class: "svg-icon", "data-icon": name })) svg.setAttribute(k, v);
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  path.setAttribute("fill-rule", "evenodd");
  svg.append(path);
  return svg;
};
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};

const state = {
  sessions: [],
  current: null, // session view from the API
  stream: null,
  streaming: null, // the <li> of the assistant message being streamed
  steps: new Map(), // tool_use_id -> step element
  rfb: null,
  connecting: false, // a live-view ticket is being fetched
  replayedUpTo: 0, // the session's last seq when it was opened
  userControl: false,
  ready: false, // sessions and policies loaded
};
window.agenthost = state; // for debugging and the browser tests

function toast(message, kind = "error") {
  const node = el("div", { class: `toast ${kind}`, role: "alert" }, message);
  $("toasts").append(node);
  setTimeout(() => node.remove(), 8000);
}

function reportError(e) {
  if (e instanceof ApiError && e.status === 401) {
    signOut("Your token is no longer valid; sign in again.");
    return;
  }
  const code = e instanceof ApiError ? ` (${e.code})` : "";
  toast(`${e.message}${code}`);
}

// Model text is untrusted (a web page the agent read can inject into it):
// no forms, inputs, buttons, styles, frames or media, so a reply can never
// pose as a sign-in form or restyle the page. The CSP also says
// form-action 'none'.
const PURIFY = {
  FORBID_TAGS: ["form", "input", "button", "textarea", "select", "option", "label", "fieldset",
    "style", "link", "meta", "iframe", "frame", "object", "embed", "video", "audio", "svg", "math"],
  FORBID_ATTR: ["style", "action", "formaction", "class", "id"],
};
const renderMarkdown = (text) => DOMPurify.sanitize(marked.parse(text ?? ""), PURIFY);

// ---- sign in -------------------------------------------------------------

async function signIn(candidate) {
  const me = await api("GET", "/me", undefined, candidate);
  token.set(candidate);
  return me;
}

function signOut(message) {
  token.clear();
  closeSession();
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message ?? "";
  $("token-input").focus();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    await signIn($("token-input").value.trim());
    await start();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

$("logout").addEventListener("click", () => signOut());

// ---- sessions ------------------------------------------------------------

async function loadSessions() {
  const page = await api("GET", "/sessions?limit=200");
  state.sessions = page.sessions;
  renderSessions();
}

function renderSessions() {
  const list = $("sessions");
  list.replaceChildren();
  for (const s of state.sessions) {
    const selected = state.current?.id === s.id;
    const item = el(
      "li",
      { class: selected ? "selected" : "", "data-session": s.id },
      el(
        "button",
        { class: "session-open", type: "button", "aria-current": selected ? "true" : "false", onclick: () => openSession(s.id) },
        el("span", { class: "dot", "data-status": s.status, title: s.status }),
        el("span", { class: "session-name" }, s.title || "New session"),
      ),
      el("button", { class: "icon", type: "button", title: "Rename", "aria-label": `Rename ${s.title || "session"}`, onclick: () => renameSession(s) }, icon("pencil")),
      el("button", { class: "icon", type: "button", title: "Delete", "aria-label": `Delete ${s.title || "session"}`, onclick: () => deleteSession(s) }, icon("trash")),
    );
    list.append(item);
  }
}

async function newSession() {
  try {
    const s = await api("POST", "/sessions", {});
    await loadSessions();
    await openSession(s.id);
    $("input").focus();
  } catch (e) {
    reportError(e);
  }
}

async function renameSession(s) {
  const title = prompt("Session title", s.title);
  if (title === null) return;
  try {
    await api("PATCH", `/sessions/${s.id}`, { title });
    await loadSessions();
    if (state.current?.id === s.id) $("session-title").textContent = title || "New session";
  } catch (e) {
    reportError(e);
  }
}

async function deleteSession(s) {
  if (!confirm(`Delete "${s.title || "New session"}" and its desktop?`)) return;
  try {
    await api("DELETE", `/sessions/${s.id}`);
    if (state.current?.id === s.id) closeSession();
    await loadSessions();
  } catch (e) {
    reportError(e);
  }
}

function closeSession() {
  state.stream?.close();
  state.stream = null;
  disconnectDesktop();
  state.current = null;
  state.streaming = null;
  state.steps.clear();
  $("messages").replaceChildren();
  setBanner(null);
  renderHeader();
}

async function openSession(id) {
  closeSession();
  try {
    state.current = await api("GET", `/sessions/${id}`);
  } catch (e) {
    reportError(e);
    return;
  }
  history.replaceState(null, "", `#${id}`);
  // Frames up to here are history being replayed, not news.
  state.replayedUpTo = state.current.last_seq ?? 0;
  renderHeader();
  renderSessions();
  document.body.classList.remove("show-sidebar");
  state.stream = new SessionStream(id, token.get(), {
    onFrame: handleFrame,
    onState: (s) => setBanner(s === "lost" ? "Connection lost — reconnecting…" : null),
  });
  connectDesktop();
}

// ---- the header ------------------------------------------------------------

function renderHeader() {
  const s = state.current;
  $("session-title").textContent = s ? s.title || "New session" : "No session";
  const status = s?.status ?? "idle";
  $("status").textContent = status;
  $("status").dataset.status = status;
  const cost = s?.cost_usd > 0 ? ` · ≈ $${s.cost_usd < 1 ? s.cost_usd.toPrecision(2) : s.cost_usd.toFixed(2)}` : "";
  $("usage").textContent = s ? `${s.input_tokens.toLocaleString()} in / ${s.output_tokens.toLocaleString()} out tokens${cost}` : "";
  $("pause").disabled = status !== "running";
  $("resume").disabled = !(status === "paused" || status === "error");
  $("stop").disabled = !(status === "running" || status === "paused");
  // Nothing to send to until a session is open.
  $("export").disabled = !s;
  $("send").disabled = !s;
  $("input").disabled = !s;
  $("input").placeholder = !s
    ? "Start a session with + New."
    : status === "finished"
      ? "The agent finished. Ask a follow-up… (Enter to send)"
      : "Ask the agent… (Enter to send, Shift+Enter for a new line)";
  const picker = $("policy-picker");
  if (s && picker.value !== s.policy) picker.value = s.policy;
  for (const [box, key] of [["ask-first", "ask_before_acting"], ["record", "record_video"]]) {
    $(box).disabled = !s;
    $(box).checked = !!s?.settings?.[key];
  }
  state.userControl = !!s?.user_control;
  $("takeover").textContent = state.userControl ? "Give back to agent" : "Take over";
  $("takeover").setAttribute("aria-pressed", String(state.userControl));
  if (state.rfb) state.rfb.viewOnly = !state.userControl;
}

async function loadPolicies() {
  const { policies } = await api("GET", "/policies");
  const picker = $("policy-picker");
  picker.replaceChildren(...policies.map((p) => el("option", { value: p.name }, `${p.name} ${p.version}`)));
}

$("policy-picker").addEventListener("change", async (ev) => {
  if (!state.current) return;
  const policy = ev.target.value;
  try {
    state.current = await api("PUT", `/sessions/${state.current.id}/policy`, { policy });
    renderHeader();
  } catch (e) {
    reportError(e);
    renderHeader();
  }
});

for (const [box, key] of [["ask-first", "ask_before_acting"], ["record", "record_video"]]) {
  $(box).addEventListener("change", async (ev) => {
    if (!state.current) return;
    try {
      state.current = await api("PATCH", `/sessions/${state.current.id}`, { settings: { [key]: ev.target.checked } });
    } catch (e) {
      reportError(e);
    }
    renderHeader();
  });
}

for (const [button, action] of [["pause", "pause"], ["resume", "resume"], ["stop", "cancel"]]) {
  $(button).addEventListener("click", async () => {
    if (!state.current) return;
    try {
      await api("POST", `/sessions/${state.current.id}/${action}`);
    } catch (e) {
      reportError(e);
    }
  });
}

// ---- the conversation ------------------------------------------------------

function append(node, frame) {
  if (frame?.seq) node.dataset.seq = frame.seq;
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.append(node);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function systemLine(text, kind = "info", frame) {
  append(el("li", { class: `system ${kind}`, "data-kind": frame?.kind ?? "notice" }, text), frame);
}

function handleFrame(frame) {
  const p = frame.payload ?? {};
  switch (frame.kind) {
    case "snapshot":
      state.current = { ...state.current, ...frame.session };
      renderHeader();
      break;
    case "user_message":
      append(el("li", { class: "turn user", "data-kind": "user_message" }, el("div", { class: "bubble" }, p.text)), frame);
      break;
    case "assistant_delta": {
      if (!state.streaming) {
        state.streaming = el("li", { class: "turn agent streaming", "data-kind": "assistant_delta" }, el("div", { class: "bubble" }));
        append(state.streaming);
      }
      const bubble = state.streaming.firstChild;
      bubble.dataset.raw = (bubble.dataset.raw ?? "") + p.text;
      bubble.textContent = bubble.dataset.raw;
      $("messages").scrollTop = $("messages").scrollHeight;
      break;
    }
    case "assistant_message": {
      state.streaming?.remove();
      state.streaming = null;
      const bubble = el("div", { class: "bubble markdown" });
      bubble.innerHTML = renderMarkdown(p.text);
      append(el("li", { class: "turn agent", "data-kind": "assistant_message" }, bubble), frame);
      break;
    }
    case "thinking":
      // The model's reasoning, folded away; plain text, as model output is.
      append(el("li", { class: "turn agent", "data-kind": "thinking" },
        el("details", { class: "thinking" }, el("summary", {}, "Thinking"), el("div", { class: "thinking-text" }, p.text))), frame);
      break;
    case "provider_part":
      // A block only the model's provider reads: stored to send back, nothing to show.
      break;
    case "tool_call":
      addStep(frame);
      break;
    case "tool_result":
      finishStep(frame);
      break;
    case "state_changed":
      state.current = { ...state.current, status: p.status };
      renderHeader();
      updateSessionStatus(p.status);
      if (p.status !== "running") {
        state.streaming?.remove();
        state.streaming = null;
      } else if (frame.seq > state.replayedUpTo && !state.rfb && !state.connecting) {
        // Live, not replayed: a follow-up to a finished session has its
        // desktop back.
        connectDesktop();
      }
      systemLine(`${statusText(p.status)}${p.reason ? ` — ${p.reason}` : ""}`, p.status === "error" ? "error" : "info", frame);
      break;
    case "policy_switched":
      state.current = { ...state.current, policy: p.to };
      renderHeader();
      systemLine(`Policy switched from ${p.from} to ${p.to} ${p.version ?? ""}`, "info", frame);
      break;
    case "usage":
      state.current = {
        ...state.current,
        input_tokens: p.total_input_tokens,
        output_tokens: p.total_output_tokens,
        cost_usd: p.total_cost_usd ?? state.current?.cost_usd,
      };
      renderHeader();
      break;
    case "approval_requested":
      askApproval(frame);
      break;
    case "approval_decided":
      settleApproval(frame);
      break;
    case "settings_changed":
      state.current = { ...state.current, settings: p };
      renderHeader();
      systemLine(
        `Ask before acting is ${p.ask_before_acting ? "on: actions wait for your approval" : "off"}; recording is ${p.record_video ? "on" : "off"}.`,
        "info",
        frame,
      );
      break;
    case "recording_saved":
      showRecording(frame);
      break;
    case "control_changed":
      state.current = { ...state.current, user_control: p.holder === "user" };
      renderHeader();
      systemLine(p.holder === "user" ? "You took over the desktop; the agent pauses." : "The agent has the desktop again.", "info", frame);
      break;
    case "error":
      if (typeof frame.seq === "number") systemLine(`Error (${p.code}): ${p.message}`, "error", frame);
      else toast(`${p.message} (${p.code})`);
      break;
    default:
      break;
  }
}

function statusText(status) {
  return { idle: "Ready", running: "Working…", paused: "Paused", finished: "Finished", error: "Stopped on an error" }[status] ?? status;
}

function updateSessionStatus(status) {
  const s = state.sessions.find((x) => x.id === state.current?.id);
  if (s) {
    s.status = status;
    renderSessions();
  }
}

function describeCall(name, input) {
  let args;
  try {
    args = JSON.parse(input);
  } catch {
    return { label: name, args: input };
  }
  const action = args.action ? ` · ${args.action}` : args.command ? ` · ${args.command}` : "";
  return { label: `${name}${action}`, args: JSON.stringify(args, null, 2) };
}

function addStep(frame) {
  const { id, name, input, via } = frame.payload;
  const { label, args } = describeCall(name, input);
  const result = el("div", { class: "step-result pending" }, "running…");
  // A call an outside client asked for (an MCP client driving the session) says so.
  const from = via ? el("span", { class: "via", title: `asked for by a ${via} client, not the session's policy` }, `via ${via.toUpperCase()}`) : "";
  const step = el(
    "li",
    { class: "step", "data-kind": "tool_call", "data-tool": name, ...(via ? { "data-via": via } : {}) },
    el("details", {}, el("summary", {}, el("span", { class: "step-icon" }, icon("gear")), " ", label, from), el("pre", { class: "args" }, args)),
    result,
  );
  state.steps.set(id, step);
  append(step, frame);
}

function finishStep(frame) {
  const { tool_use_id, content = [], is_error, duration_ms } = frame.payload;
  let step = state.steps.get(tool_use_id);
  if (!step) {
    step = el("li", { class: "step", "data-kind": "tool_call" }, el("div", { class: "step-result" }));
    append(step);
  }
  step.dataset.resultSeq = frame.seq;
  const result = step.querySelector(".step-result");
  result.classList.remove("pending");
  result.classList.toggle("failed", !!is_error);
  result.replaceChildren();
  for (const part of content) {
    if (part.type === "text") result.append(el("pre", {}, part.text));
    if (part.type === "image") {
      const img = el("img", { class: "thumb", alt: `Screenshot ${part.width}×${part.height}`, "data-sha": part.sha256, tabindex: "0", role: "button" });
      const open = async () => {
        $("image-full").src = await imageUrl(state.current.id, part.sha256);
        $("image-dialog").showModal();
      };
      img.addEventListener("click", open);
      img.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && open());
      imageUrl(state.current.id, part.sha256).then((url) => (img.src = url), reportError);
      result.append(img);
    }
  }
  if (duration_ms !== undefined) result.append(el("small", { class: "duration" }, `${duration_ms} ms`));
}

// ---- recordings -------------------------------------------------------------

/** A run's desktop video: a line that plays it in place or downloads it
 * (the file needs the token, so it is fetched, not linked). */
function showRecording(frame) {
  const { file, bytes, duration_ms } = frame.payload;
  const secs = Math.round(duration_ms / 1000);
  const length = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`;
  const size = bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
  const play = el("button", { type: "button", class: "play" }, "Watch");
  const save = el("button", { type: "button", class: "link" }, "Download");
  const line = el("li", { class: "system recording", "data-kind": "recording_saved", "data-file": file },
    `Recording of this run (${length}, ${size}) `, play, " ", save);
  const sessionId = state.current.id;
  play.addEventListener("click", async () => {
    play.disabled = true;
    try {
      const url = await recordingUrl(sessionId, file);
      line.append(el("video", { class: "recording-video", controls: "", src: url, preload: "metadata" }));
      play.remove();
    } catch (e) {
      play.disabled = false;
      reportError(e);
    }
  });
  save.addEventListener("click", () => downloadRecording(sessionId, file).catch(reportError));
  append(line, frame);
}

// ---- approvals ---------------------------------------------------------------

/** A tool call waiting for the person: the call, why it waits, and
 * Approve / Deny with an optional note, inside the call's step. */
function askApproval(frame) {
  const { tool_use_id, reason, expires_at } = frame.payload;
  const step = state.steps.get(tool_use_id);
  const note = el("input", { class: "approval-note", type: "text", maxlength: "2000", placeholder: "Note for the agent (optional)", "aria-label": "Note" });
  const decide = async (approve, buttons) => {
    buttons.forEach((b) => (b.disabled = true));
    try {
      await api("POST", `/sessions/${state.current.id}/approvals/${encodeURIComponent(tool_use_id)}`, { approve, note: note.value });
    } catch (e) {
      buttons.forEach((b) => (b.disabled = false));
      reportError(e);
    }
  };
  const approve = el("button", { type: "button", class: "approve" }, "Approve");
  const deny = el("button", { type: "button", class: "deny danger" }, "Deny");
  approve.addEventListener("click", () => decide(true, [approve, deny]));
  deny.addEventListener("click", () => decide(false, [approve, deny]));
  const until = new Date(expires_at).toLocaleTimeString();
  const box = el(
    "div",
    { class: "approval waiting", "data-tool-use-id": tool_use_id, "data-request-seq": frame.seq, role: "group", "aria-label": "Approval" },
    el("p", {}, el("strong", {}, "Waiting for your approval"), ` — ${reason}. Unanswered by ${until}, it is denied.`),
    note,
    el("div", { class: "approval-actions" }, approve, deny),
  );
  if (step) {
    step.classList.add("awaiting");
    step.querySelector(".step-result").textContent = "waiting for approval…";
    step.querySelector(".step-result").before(box);
  } else {
    append(el("li", { class: "step" }, box), frame);
  }
  if (frame.seq > state.replayedUpTo) box.scrollIntoView({ block: "nearest" });
}

function settleApproval(frame) {
  const { tool_use_id, outcome, note } = frame.payload;
  const box = document.querySelector(`.approval[data-tool-use-id="${CSS.escape(tool_use_id)}"]`);
  const text = { approved: "Approved", denied: "Denied", timed_out: "Timed out", withdrawn: "Withdrawn" }[outcome] ?? outcome;
  const line = el("p", { class: `approval-outcome ${outcome}`, "data-decided-seq": frame.seq }, el("strong", {}, text), note ? ` — ${note}` : "");
  if (box) {
    box.classList.remove("waiting");
    box.dataset.outcome = outcome;
    box.replaceChildren(line);
    box.closest(".step")?.classList.remove("awaiting");
    const result = box.closest(".step")?.querySelector(".step-result.pending");
    if (result) result.textContent = outcome === "approved" ? "running…" : "not run";
  } else {
    systemLine(`${text}${note ? ` — ${note}` : ""}`, "info", frame);
  }
}

$("composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("input").value;
  if (!text.trim() || !state.current) return;
  try {
    await api("POST", `/sessions/${state.current.id}/messages`, { text });
    $("input").value = "";
    if (!state.current.title) {
      // The first message names the session.
      await loadSessions();
      const listed = state.sessions.find((x) => x.id === state.current?.id);
      if (listed) {
        state.current = { ...state.current, title: listed.title };
        renderHeader();
      }
    }
  } catch (e) {
    reportError(e);
  }
});

$("input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $("composer").requestSubmit();
  }
});

// ---- the live desktop ------------------------------------------------------

async function connectDesktop(retried = false) {
  disconnectDesktop();
  // A finished session's desktop has been released; a follow-up brings
  // one back (see the state_changed case).
  if (!state.current || state.current.status === "finished") return;
  const sessionId = state.current.id;
  $("desktop-state").textContent = "connecting…";
  let ticket;
  state.connecting = true;
  try {
    ticket = await api("POST", `/sessions/${sessionId}/live`);
  } catch (e) {
    $("desktop-state").textContent = "unavailable";
    reportError(e);
    return;
  } finally {
    state.connecting = false;
  }
  if (state.current?.id !== sessionId) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const rfb = new RFB($("screen"), `${scheme}://${location.host}${ticket.path}`, { wsProtocols: ["binary"] });
  rfb.viewOnly = !state.userControl;
  rfb.scaleViewport = true;
  rfb.background = "#1e1e1e";
  rfb.addEventListener("connect", () => ($("desktop-state").textContent = "live"));
  rfb.addEventListener("disconnect", () => {
    if (state.rfb !== rfb) return;
    state.rfb = null;
    $("desktop-state").replaceChildren("disconnected ", el("button", { type: "button", class: "link", onclick: () => connectDesktop() }, "reconnect"));
    // One automatic retry: a dropped view is usually a network blip.
    if (!retried) setTimeout(() => state.current?.id === sessionId && !state.rfb && connectDesktop(true), 1000);
  });
  state.rfb = rfb;
}

function disconnectDesktop() {
  const rfb = state.rfb;
  state.rfb = null;
  rfb?.disconnect();
  $("screen").replaceChildren();
  $("desktop-state").textContent = "not connected";
}

$("export").addEventListener("change", async (ev) => {
  const format = ev.target.value;
  ev.target.value = "";
  if (!format || !state.current) return;
  try {
    await download(state.current.id, format);
  } catch (e) {
    reportError(e);
  }
});

$("takeover").addEventListener("click", async () => {
  if (!state.current) return;
  try {
    state.current = await api("POST", `/sessions/${state.current.id}/${state.userControl ? "handback" : "takeover"}`);
    renderHeader();
    if (state.userControl) state.rfb?.focus();
  } catch (e) {
    reportError(e);
  }
});

// ---- plugins -----------------------------------------------------------------

$("show-plugins").addEventListener("click", async () => {
  try {
    const { plugins } = await api("GET", "/plugins");
    $("plugins-list").replaceChildren(
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ...["Plugin", "Kind", "Version", "Granted", "Tools"].map((h) => el("th", { scope: "col" }, h)))),
        el(
          "tbody",
          {},
          ...plugins.map((p) =>
            el(
              "tr",
              { "data-plugin": p.name },
              el("td", {}, el("strong", {}, p.name), el("br"), el("small", {}, p.description ?? "")),
              el("td", {}, p.kind),
              el("td", {}, p.version, p.versions.length > 1 ? el("small", {}, ` (also ${p.versions.filter((v) => v !== p.version).join(", ")})`) : ""),
              el("td", {}, p.granted.length ? p.granted.join(", ") : "nothing"),
              el("td", {}, (p.tools ?? []).map((t) => t.name).join(", ")),
            ),
          ),
        ),
      ),
    );
    $("plugins-dialog").showModal();
  } catch (e) {
    reportError(e);
  }
});

// ---- layout and keyboard -------------------------------------------------------

function setBanner(text) {
  $("banner").hidden = !text;
  $("banner").textContent = text ?? "";
}

$("new-session").addEventListener("click", newSession);
$("toggle-sidebar").addEventListener("click", () => document.body.classList.toggle("show-sidebar"));
$("toggle-desktop").addEventListener("click", () => document.body.classList.toggle("show-desktop"));
document.addEventListener("keydown", (ev) => {
  if (ev.altKey && ev.key.toLowerCase() === "n") {
    ev.preventDefault();
    newSession();
  }
});

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  await Promise.all([loadSessions(), loadPolicies()]);
  const wanted = location.hash.slice(1);
  const first = state.sessions.find((s) => s.id === wanted) ?? state.sessions[0];
  if (first) await openSession(first.id);
  state.ready = true;
}

(async () => {
  if (!token.get()) return signOut();
  try {
    await signIn(token.get());
    await start();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) signOut("Your token is no longer valid; sign in again.");
    else {
      signOut();
      $("login-error").textContent = e.message;
    }
  }
})();
