// Profile: import location history from a file (GPX, GeoJSON, our CSV export, Google Takeout,
// an OwnTracks Recorder .rec file) into one's own account. The file goes up with
// XMLHttpRequest (fetch reports no upload progress) as the raw body of POST /api/imports/;
// the import then runs on the server, followed by polling GET /api/imports/{id}/ each second
// until its summary arrives. Past imports are listed below.

import { h, replace } from '../lib/dom';
import { ApiError, csrfToken, get } from '../lib/api';
import { dateTime } from '../lib/format';
import { checkbox, field, input, message, notice, onSubmit, section, table } from '../lib/ui';

/** What the server says of an import (`GET /api/imports/{id}/`). */
interface ImportJob {
  id: number;
  device: string;
  format: string;
  filename: string;
  dry_run: boolean;
  state: 'uploading' | 'queued' | 'running' | 'done' | 'failed';
  bytes_total: number;
  bytes_read: number;
  items: number;
  written: number;
  summary: ImportSummary | null;
  error: string | null;
  created_at: string;
  finished_at: string | null;
}

interface ImportSummary {
  valid: number;
  stored: Record<string, number>;
  skipped: Record<string, number>;
  problems: string[];
  notes: string[];
  aborted: string | null;
}

const FORMATS: [string, string][] = [
  ['auto', 'Find out from the content'],
  ['gpx', 'GPX'],
  ['geojson', 'GeoJSON'],
  ['csv', 'mytracks CSV export'],
  ['takeout-records', 'Google Takeout Records.json'],
  ['takeout-semantic', 'Google Semantic Location History (one month)'],
  ['takeout-timeline', 'Google Timeline.json (from the phone)'],
  ['rec', 'OwnTracks Recorder .rec file'],
];

function megabytes(bytes: number): string {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/** Sends `file` as the body of POST /api/imports/?query, reporting the bytes sent. */
function upload(file: File, query: URLSearchParams, progress: (sent: number, total: number) => void): Promise<ImportJob> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('POST', `/api/imports/?${query.toString()}`);
    request.setRequestHeader('Content-Type', 'application/octet-stream');
    request.setRequestHeader('Accept', 'application/json');
    request.setRequestHeader('X-CSRFToken', csrfToken());
    request.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) progress(event.loaded, event.total);
    });
    request.addEventListener('load', () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(request.responseText) as Record<string, unknown>;
      } catch {
        // Not JSON: the status line says enough.
      }
      if (request.status === 202) {
        resolve(body as unknown as ImportJob);
        return;
      }
      const text = typeof body.error === 'string' ? body.error : `${request.status} ${request.statusText}`;
      reject(new ApiError(request.status, text, typeof body.field === 'string' ? body.field : undefined));
    });
    request.addEventListener('error', () => reject(new Error('The upload failed: the connection to the server was lost.')));
    request.addEventListener('abort', () => reject(new Error('The upload was cancelled.')));
    request.send(file);
  });
}

/** "12 stored, 3 already there" for a job's list row. */
function outcome(job: ImportJob): string {
  if (job.state === 'failed') return job.error ?? 'failed';
  if (job.state !== 'done' || !job.summary) return `${megabytes(job.bytes_read)} of ${megabytes(job.bytes_total)} read`;
  const s = job.summary;
  const skipped = Object.values(s.skipped).reduce((a, b) => a + b, 0);
  const parts = job.dry_run
    ? [`dry run: ${s.valid} valid`]
    : [`${s.stored.locations ?? 0} stored`, `${s.stored.location_copies ?? 0} already there`];
  if (skipped > 0) parts.push(`${skipped} skipped`);
  return parts.join(', ');
}

/** The summary of an ended import: counts, skips by reason, the first problems. */
function summaryView(job: ImportJob): HTMLElement {
  const s = job.summary;
  const box = h('div', { id: 'import-summary', class: job.state === 'done' ? 'notice success' : 'notice error', role: 'status' });
  if (job.state === 'failed') box.append(h('p', {}, h('strong', {}, 'The import failed: '), job.error ?? ''));
  if (!s) return box;
  const stored = s.stored;
  const rows: [string, number][] = job.dry_run
    ? [['Valid items (nothing written: dry run)', s.valid]]
    : [
        ['Points stored', stored.locations ?? 0],
        ['Points already there', stored.location_copies ?? 0],
        ['Region events stored', stored.transitions ?? 0],
        ['Region events already there', stored.transition_copies ?? 0],
        ['Other messages stored', stored.messages ?? 0],
      ];
  for (const [reason, count] of Object.entries(s.skipped)) rows.push([`Skipped: ${reason}`, count]);
  box.append(
    h('p', {}, h('strong', {}, job.dry_run ? 'Dry run finished' : 'Import finished'), ` — ${job.filename || 'upload'} → ${job.device}`),
    h('dl', { class: 'summary' }, rows.map(([label, n]) => [h('dt', {}, label), h('dd', {}, n.toLocaleString('en'))])),
  );
  if (s.problems.length > 0) {
    box.append(h('p', {}, 'First problems (where in the file):'), h('ul', { class: 'problems' }, s.problems.map((p) => h('li', {}, h('code', {}, p)))));
  }
  if (s.notes.length > 0) box.append(h('ul', {}, s.notes.map((n) => h('li', {}, n))));
  return box;
}

export function importSection(): HTMLElement {
  const status = notice();
  const list = h('div', { id: 'import-list' });
  // The upload's bar stays above the import's once the upload is done.
  const uploading = h('div');
  const importing = h('div');
  const activity = h('div', { id: 'import-activity' }, uploading, importing);
  const refresh = async (): Promise<ImportJob[]> => {
    const jobs = await get<ImportJob[]>('/api/imports/');
    replace(
      list,
      table(
        ['Started', 'File', 'Device', 'Format', 'State', 'Result'],
        jobs.map((j) => [dateTime(j.created_at), j.filename || '—', j.device, j.format, j.state, outcome(j)]),
        'No imports yet.',
      ),
    );
    return jobs;
  };
  const file = input({ type: 'file', name: 'file', required: true });
  const device = input({ name: 'device', required: true, maxlength: 100, autocapitalize: 'none', placeholder: 'e.g. old-phone' });
  const format = h('select', { name: 'format' }, FORMATS.map(([value, label]) => h('option', { value }, label)));
  const dryRun = checkbox('Dry run: check the file, write nothing', { name: 'dry_run' });
  const form = h(
    'form',
    { id: 'import-form' },
    h('div', { class: 'row' }, field('File', file), field('Device', device, 'The history becomes this device of yours (created if new).'), field('Format', format)),
    dryRun.wrap,
    h('p', {}, h('button', { type: 'submit', class: 'primary' }, 'Upload and import')),
  );
  onSubmit(form, status, async () => {
    const chosen = file.files?.[0];
    if (!chosen) throw new Error('Choose a file first.');
    const query = new URLSearchParams({ device: device.value.trim(), format: format.value, filename: chosen.name });
    if (dryRun.box.checked) query.set('dry_run', 'true');
    const uploadBar = h('progress', { id: 'import-upload-progress', max: chosen.size || 1, value: 0, 'aria-label': 'Upload' });
    const uploadText = h('span', { class: 'small' }, `Uploading ${chosen.name}…`);
    replace(uploading, h('div', { class: 'field' }, uploadText, uploadBar));
    replace(importing);
    const job = await upload(chosen, query, (sent, total) => {
      uploadBar.max = total;
      uploadBar.value = sent;
      uploadText.textContent = `Uploading ${chosen.name}: ${megabytes(sent)} of ${megabytes(total)}`;
    });
    await refresh();
    await follow(job.id);
    form.reset();
  });

  /** Polls the job each second, showing its progress, until it ends; then its summary. */
  const follow = async (id: number): Promise<void> => {
    const importBar = h('progress', { id: 'import-progress', max: 1, value: 0, 'aria-label': 'Import' });
    const importText = h('span', { class: 'small' }, 'Waiting for its turn…');
    replace(importing, h('div', { class: 'field' }, importText, importBar));
    for (;;) {
      const job = await get<ImportJob>(`/api/imports/${id}/`);
      if (job.state === 'done' || job.state === 'failed') {
        replace(importing, summaryView(job));
        await refresh();
        return;
      }
      if (job.state === 'running') {
        importBar.max = Math.max(job.bytes_total, 1);
        importBar.value = job.bytes_read;
        importText.textContent = `Importing: ${megabytes(job.bytes_read)} of ${megabytes(job.bytes_total)} read, ${job.items.toLocaleString('en')} points so far`;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };

  // An import still going on (started before this page was opened) is followed too.
  refresh()
    .then(async (jobs) => {
      const going = jobs.find((j) => j.state === 'queued' || j.state === 'running');
      if (going) await follow(going.id);
    })
    .catch((e: unknown) => status.show('error', message(e)));
  return section(
    'Import history',
    h('p', { class: 'muted small' }, 'Bring your history from a GPX, GeoJSON or mytracks CSV file, a Google Takeout (Records.json, Semantic Location History, Timeline.json) or an OwnTracks Recorder .rec file. It goes into your own account; points already there are skipped, so importing a file twice adds nothing.'),
    form,
    status.element,
    activity,
    h('h3', {}, 'Past imports'),
    list,
  );
}
