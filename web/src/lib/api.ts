// The REST API from the browser: JSON in and out, the session cookie, and the CSRF token the
// server wants in `X-CSRFToken` on every unsafe request (it comes in the `csrftoken` cookie).

/** An error answer: the server's `error` text, and the invalid field for validation errors. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

function cookie(name: string): string {
  for (const part of document.cookie.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return '';
}

/** The CSRF token to send in `X-CSRFToken` on unsafe requests made without [`send`]. */
export function csrfToken(): string {
  return cookie('csrftoken');
}

/** The server's answer for a failed request, as one readable sentence. */
async function failure(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`;
  let field: string | undefined;
  try {
    const body = (await response.json()) as Record<string, unknown>;
    if (typeof body.error === 'string') message = body.error;
    if (typeof body.field === 'string') {
      field = body.field;
      const details = body[field];
      if (Array.isArray(details) && details.length > 0) message = details.map(String).join(' ');
    }
  } catch {
    // Not JSON: keep the status line.
  }
  if (response.status === 429) {
    const wait = response.headers.get('Retry-After');
    if (wait) message = `Too many attempts; try again in ${wait} s.`;
  }
  return new ApiError(response.status, message, field);
}

/** Sends a request; `body` is sent as JSON. Resolves to the raw response when it is OK. */
export async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!['GET', 'HEAD'].includes(method)) headers['X-CSRFToken'] = cookie('csrftoken');
  const init: RequestInit = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (response.status === 401 && !location.pathname.startsWith('/login')) {
    // The session ended (logout elsewhere, expiry): log in again and come back.
    location.assign(`/login/?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

/** A JSON request; 204 resolves to `undefined`. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await send(method, path, body);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export const get = <T>(path: string): Promise<T> => api<T>('GET', path);
export const post = <T>(path: string, body: unknown = {}): Promise<T> => api<T>('POST', path, body);
export const patch = <T>(path: string, body: unknown): Promise<T> => api<T>('PATCH', path, body);
export const del = <T>(path: string): Promise<T> => api<T>('DELETE', path);

/** Offers `blob` as a download named `name`. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Logs out and goes to the login page. */
export async function logout(): Promise<void> {
  try {
    await send('POST', '/api/auth/logout/');
  } finally {
    location.assign('/login/');
  }
}
