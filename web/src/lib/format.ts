// How times, numbers and durations read on the pages (the browser's locale and time zone).

/** A time from Unix seconds or RFC 3339, as local date and time; '—' for none. */
export function dateTime(value: number | string | null | undefined): string {
  if (value === null || value === undefined || value === '') return '—';
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return '—';
  return date.toLocaleString(undefined, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  });
}

/** Just the date of an RFC 3339 time. */
export function date(value: string | null | undefined): string {
  if (!value) return '—';
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? '—' : parsed.toLocaleDateString();
}

/** "5 min ago" style age of a time in Unix seconds. */
export function ago(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '';
  const delta = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  if (delta < 60) return 'just now';
  if (delta < 3600) return `${Math.floor(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.floor(delta / 3600)} h ago`;
  return `${Math.floor(delta / 86400)} d ago`;
}

/** Minutes after midnight as HH:MM. */
export function clock(minutes: number): string {
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
}

/** Today's date as YYYY-MM-DD in local time (what `<input type=date>` holds). */
export function today(): string {
  const now = new Date();
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/** Unix seconds of local midnight of a YYYY-MM-DD date. */
export function midnight(day: string): number {
  const [y, m, d] = day.split('-').map(Number);
  return Math.floor(new Date(y ?? 1970, (m ?? 1) - 1, d ?? 1).getTime() / 1000);
}
