// The REST API with the stored token; errors carry the API's code and message.

const TOKEN_KEY = "agenthost.token";

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (t) => localStorage.setItem(TOKEN_KEY, t),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body, tokenOverride) {
  const headers = { authorization: `Bearer ${tokenOverride ?? token.get()}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  // Reads are retried when the browser aborts them (a network change, see
  // boot.js); writes are not, so nothing is sent twice.
  const attempts = method === "GET" ? 4 : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      res = await fetch(`/api/v1${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      break;
    } catch (e) {
      if (attempt >= attempts) throw new ApiError(0, "network", `The server is not reachable (${e.message}).`);
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(res.status, "bad_response", `Unexpected response (${res.status}).`);
  }
  if (!res.ok) {
    const err = json?.error ?? {};
    throw new ApiError(res.status, err.code ?? "error", err.message ?? `Request failed (${res.status}).`);
  }
  return json;
}

const imageCache = new Map();

// Fetches a session export with the token and saves it as a download
// (a plain link cannot carry the Authorization header).
export async function download(sessionId, format) {
  const res = await fetch(`/api/v1/sessions/${sessionId}/export.${format}`, {
    headers: { authorization: `Bearer ${token.get()}` },
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new ApiError(res.status, body.error?.code ?? "export", body.error?.message ?? "The export failed.");
  }
  save(URL.createObjectURL(await res.blob()), `${sessionId}.${format}`);
}

// Saves an object URL as a download, then lets it go.
function save(url, name) {
  const a = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/// A run's recording as an object URL.
export async function recordingUrl(sessionId, file) {
  const res = await fetch(`/api/v1/sessions/${sessionId}/recordings/${encodeURIComponent(file)}`, {
    headers: { authorization: `Bearer ${token.get()}` },
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new ApiError(res.status, body.error?.code ?? "recording", body.error?.message ?? "The recording could not be loaded.");
  }
  return URL.createObjectURL(await res.blob());
}

export async function downloadRecording(sessionId, file) {
  save(await recordingUrl(sessionId, file), `${sessionId}-${file}`);
}

/// A stored screenshot as an object URL (images need the token, so a plain
/// <img src> cannot fetch them).
export async function imageUrl(sessionId, sha) {
  if (imageCache.has(sha)) return imageCache.get(sha);
  const get = (attempt) =>
    fetch(`/api/v1/sessions/${sessionId}/images/${sha}`, {
      headers: { authorization: `Bearer ${token.get()}` },
    }).catch((e) => {
      if (attempt >= 4) throw e;
      return new Promise((r) => setTimeout(r, 200 * attempt)).then(() => get(attempt + 1));
    });
  const promise = get(1).then(async (res) => {
    if (!res.ok) throw new ApiError(res.status, "image", "The screenshot could not be loaded.");
    return URL.createObjectURL(await res.blob());
  });
  imageCache.set(sha, promise);
  promise.catch(() => imageCache.delete(sha));
  return promise;
}
