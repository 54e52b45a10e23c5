// Small pieces the devices page shares: presence and command badges, times that read
// "2 min ago" with the exact time on hover, telemetry values, and errors shown at the field
// they are about.

import { h, uid } from '../lib/dom';
import { ApiError } from '../lib/api';
import { ago, dateTime } from '../lib/format';
import { message, type notice } from '../lib/ui';

/** Unix seconds of an RFC 3339 time (NaN for none). */
function seconds(iso: string): number {
  return Date.parse(iso) / 1000;
}

/** "online" / "offline". */
export function presenceBadge(online: boolean): HTMLSpanElement {
  return h('span', { class: `badge presence ${online ? 'ok' : 'off'}` }, online ? 'online' : 'offline');
}

/** A relative time ("5 min ago"), the exact one as its tooltip; `never` for none. */
export function relative(iso: string | null, never = 'never'): HTMLElement {
  if (!iso || Number.isNaN(seconds(iso))) return h('span', { class: 'muted' }, never);
  return h('time', { datetime: iso, title: exact(iso) }, ago(seconds(iso)));
}

/** Date and time to the second, in the browser's locale. */
export function exact(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '—';
  return date.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** The date of an RFC 3339 time, with the full time as tooltip. */
export function created(iso: string): HTMLElement {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h('span', {}, '—');
  return h('time', { datetime: iso, title: dateTime(iso) }, date.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' }));
}

const STATUS_KIND: Record<string, string> = { sent: 'off', delivered: 'info', acknowledged: 'ok' };
const STATUS_HINT: Record<string, string> = {
  sent: 'Published; the device has not received it yet',
  delivered: 'The device received it (QoS 2 complete)',
  acknowledged: 'The device answered on commands/ack',
};

/** A command's status: sent (grey), delivered (blue), acknowledged (green). */
export function commandBadge(status: string): HTMLSpanElement {
  return h('span', { class: `badge command-status ${STATUS_KIND[status] ?? 'bad'}`, title: STATUS_HINT[status] ?? null }, status);
}

/** JSON on one line, cut at `max` characters. */
export function compactJson(value: unknown, max = 240): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * A telemetry value: a flat object as "key value" pairs, a plain value as itself, anything
 * else as compact JSON.
 */
export function telemetryValue(data: unknown): HTMLElement {
  if (data === null || ['string', 'number', 'boolean'].includes(typeof data)) {
    return h('strong', { class: 'reading' }, String(data));
  }
  if (typeof data === 'object' && !Array.isArray(data)) {
    const entries = Object.entries(data as Record<string, unknown>);
    const flat = entries.length > 0 && entries.length <= 8 && entries.every(([, v]) => v === null || typeof v !== 'object');
    if (flat) {
      return h(
        'span',
        { class: 'readings' },
        entries.map(([key, v]) => h('span', { class: 'reading' }, h('span', { class: 'key' }, key), ' ', h('strong', {}, String(v)))),
      );
    }
  }
  return h('code', { class: 'json' }, compactJson(data));
}

/**
 * Errors at their field: `show(error)` marks the input the server named (`field` of a 400)
 * with the message under it, or else puts the message in `status`.
 */
export function fieldErrors(fields: Record<string, HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>, status: ReturnType<typeof notice>) {
  const shown = new Map<HTMLElement, HTMLElement>();
  const clear = (): void => {
    for (const [input, note] of shown) {
      input.removeAttribute('aria-invalid');
      const described = (input.getAttribute('aria-describedby') ?? '').split(' ').filter((id) => id && id !== note.id);
      if (described.length) input.setAttribute('aria-describedby', described.join(' '));
      else input.removeAttribute('aria-describedby');
      note.remove();
    }
    shown.clear();
  };
  const mark = (name: string, text: string): void => {
    const input = fields[name];
    if (!input) {
      status.show('error', text);
      return;
    }
    const note = h('span', { class: 'field-error', id: uid('err') }, text);
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', [input.getAttribute('aria-describedby'), note.id].filter(Boolean).join(' '));
    input.insertAdjacentElement('afterend', note);
    shown.set(input, note);
    input.focus();
  };
  // Typing in a marked field clears its mark.
  for (const input of Object.values(fields)) {
    input.addEventListener('input', () => {
      const note = shown.get(input);
      if (!note) return;
      input.removeAttribute('aria-invalid');
      note.remove();
      shown.delete(input);
    });
  }
  return {
    clear,
    mark,
    /** Shows `error` at its field if the server named one of ours; elsewhere in `status`. */
    show(error: unknown): void {
      if (error instanceof ApiError && error.field && fields[error.field]) mark(error.field, error.message);
      else status.show('error', message(error));
    },
  };
}

/** Command parameters from the textarea: empty means `{}`; otherwise a JSON object. */
export function parseParameters(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  if (text.trim() === '') return { ok: true, value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `Not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, error: 'Parameters must be a JSON object, e.g. {"times": 3}.' };
  }
  return { ok: true, value: value as Record<string, unknown> };
}
