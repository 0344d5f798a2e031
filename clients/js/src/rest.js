// REST calls (fetch, JSON, bearer token) with Aurora's error shape mapped to AuroraError.

import { AuroraError } from "./errors.js";

export async function restRequest(baseUrl, method, path, { token, body, timeoutMs = 10000 } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  // A FormData body (uploads) goes as multipart: fetch sets its Content-Type with the boundary.
  const form = typeof FormData !== "undefined" && body instanceof FormData;
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(new URL(path, baseUrl), {
      method,
      headers,
      body: body === undefined ? undefined : form ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    // The server cannot be reached (or did not answer in time): retryable, like an outage.
    const timedOut = err && (err.name === "TimeoutError" || err.name === "AbortError");
    throw new AuroraError(timedOut ? "timeout" : "unavailable", `${method} ${path}: ${err?.message ?? err}`, { cause: err });
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : { code: response.status >= 500 ? "unavailable" : "invalid", message: text.slice(0, 200) };
    throw AuroraError.fromWire(error, { status: response.status, retryAfterHeader: response.headers.get("Retry-After") });
  }
  return data;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null) search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : "";
}
