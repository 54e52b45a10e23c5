// /history/ — one device's day: device and date pickers (today by default), a two-handle time
// slider (00:00–23:59, labels follow the handles), the track as a line with its points,
// region transitions marked, and exports (GPX, GeoJSON, CSV) of exactly what is shown. The
// owner (or an admin) can delete the selected range (after a confirmation with the counts)
// or one point (from its popup).

import '../styles/history.css';
import { layout } from '../lib/layout';
import { createMap, L } from '../lib/map';
import { h } from '../lib/dom';
import { del, get } from '../lib/api';
import { me } from '../lib/boot';
import { confirmDialog } from '../lib/dialog';
import { clock, dateTime, today } from '../lib/format';
import { field, message, notice } from '../lib/ui';
import type { Device, Location, Transition } from '../lib/types';

const LAST_MINUTE = 23 * 60 + 59;

const main = layout({ wide: true });
main.classList.add('history-page');
const params = new URLSearchParams(location.search);

const deviceSelect = h('select', { name: 'device', id: 'device' });
const dateInput = h('input', { type: 'date', name: 'date', id: 'date', value: params.get('date') ?? today(), required: true });
const fromInput = h('input', { type: 'range', min: 0, max: LAST_MINUTE, step: 1, value: 0, id: 'from', 'aria-label': 'From' });
const toInput = h('input', { type: 'range', min: 0, max: LAST_MINUTE, step: 1, value: LAST_MINUTE, id: 'to', 'aria-label': 'To' });
const fromLabel = h('output', { for: 'from', id: 'from-label' }, '00:00');
const toLabel = h('output', { for: 'to', id: 'to-label' }, '23:59');
const summary = h('p', { id: 'summary', class: 'summary', role: 'status' }, '');
const status = notice();
const exportLink = (format: string, text: string, file: string): HTMLAnchorElement =>
  h('a', { class: 'button small export', 'data-format': format, download: file, href: '#' }, text);
const exports = [
  exportLink('gpx', 'GPX', 'track.gpx'),
  exportLink('geojson', 'GeoJSON', 'track.geojson'),
  exportLink('csv', 'CSV', 'track.csv'),
];
const deleteRange = h('button', { type: 'button', class: 'small danger', id: 'delete-range', hidden: true }, 'Delete this range');
const mapElement = h('div', { class: 'map', id: 'map', role: 'region', 'aria-label': 'Map of the track' });

main.append(
  h(
    'section',
    { class: 'controls card', 'aria-labelledby': 'history-title' },
    h('h1', { id: 'history-title' }, 'History'),
    h('div', { class: 'row' }, field('Device', deviceSelect), field('Date', dateInput)),
    h(
      'div',
      { class: 'time-range', role: 'group', 'aria-labelledby': 'range-title' },
      h('div', { class: 'range-head' }, h('span', { class: 'label', id: 'range-title' }, 'Time of day'), h('span', { class: 'range-labels' }, fromLabel, ' – ', toLabel)),
      h('div', { class: 'dual-range' }, fromInput, toInput),
    ),
    h('div', { class: 'row summary-row' }, summary, h('div', { class: 'actions', role: 'group', 'aria-label': 'Export' }, h('span', { class: 'label' }, 'Export:'), exports), deleteRange),
    status.element,
  ),
  mapElement,
);

const map = createMap(mapElement);
const trackLayer = L.layerGroup().addTo(map);
let points: Location[] = [];
let transitions: Transition[] = [];
let devices: Device[] = [];

/** Whether the chosen device's history may be deleted here (its owner, or an admin). */
function deletable(): boolean {
  const device = devices.find((d) => String(d.id) === deviceSelect.value);
  return device !== undefined && (device.user === me().username || me().is_admin);
}

/** Unix seconds of `minutes` after local midnight of the chosen date (DST-safe). */
function at(minutes: number): number {
  const [y, m, d] = dateInput.value.split('-').map(Number);
  return Math.floor(new Date(y ?? 1970, (m ?? 1) - 1, d ?? 1, 0, minutes).getTime() / 1000);
}

/** The selected window in Unix seconds, both ends inclusive (the end minute counts whole). */
function selection(): [number, number] {
  return [at(Number(fromInput.value)), at(Number(toInput.value)) + 59];
}

function query(extra: string): string {
  const [start, end] = selection();
  return `device_id=${deviceSelect.value}&start_time=${start}&end_time=${end}${extra}`;
}

function pointPopup(l: Location): HTMLElement {
  const facts: [string, string][] = [['Time', dateTime(l.tst)], ['Position', `${l.lat.toFixed(5)}, ${l.lon.toFixed(5)}`]];
  if (l.acc !== undefined) facts.push(['Accuracy', `± ${l.acc} m`]);
  if (l.vel !== undefined) facts.push(['Speed', `${l.vel} km/h`]);
  if (l.batt !== undefined) facts.push(['Battery', `${l.batt} %`]);
  const list = h('dl', { class: 'facts small' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  if (!deletable() || l.id === undefined) return list;
  const remove = h('button', { type: 'button', class: 'small danger delete-point' }, 'Delete this point');
  remove.addEventListener('click', () => void deletePoint(l));
  return h('div', {}, list, remove);
}

/** Deletes one point after asking, then redraws without it. */
async function deletePoint(l: Location): Promise<void> {
  map.closePopup();
  const yes = await confirmDialog({ title: 'Delete this point?', message: `The location of ${dateTime(l.tst)} is deleted for good.`, confirm: 'Delete', danger: true });
  if (!yes) return;
  try {
    await del(`/api/locations/${l.id}/`);
    points = points.filter((p) => p.id !== l.id);
    render();
    status.show('success', `Deleted the location of ${dateTime(l.tst)}.`);
  } catch (error) {
    status.show('error', message(error));
  }
}

interface RangeCounts {
  locations: number;
  transitions: number;
  messages: number;
}

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

/** Deletes the selected window of the device after a confirmation showing what it holds. */
async function deleteSelection(): Promise<void> {
  status.clear();
  const [start, end] = selection();
  const path = `/api/devices/${deviceSelect.value}/history/?start_time=${start}&end_time=${end}`;
  try {
    const counts = await get<RangeCounts>(path);
    const what = `${plural(counts.locations, 'location')}, ${plural(counts.transitions, 'transition')} and ${plural(counts.messages, 'other message')}`;
    const yes = await confirmDialog({
      title: 'Delete this range?',
      message: h('p', { id: 'delete-range-count' }, `${what} from ${dateTime(start)} to ${dateTime(end)} are deleted for good.`),
      confirm: 'Delete',
      danger: true,
    });
    if (!yes) return;
    const deleted = await del<RangeCounts>(path);
    await load();
    status.show('success', `Deleted ${plural(deleted.locations, 'location')}, ${plural(deleted.transitions, 'transition')} and ${plural(deleted.messages, 'other message')}.`);
  } catch (error) {
    status.show('error', message(error));
  }
}

/** Draws what lies inside the slider's window and updates the summary and export links. */
function render(): void {
  const from = Number(fromInput.value);
  const to = Number(toInput.value);
  fromLabel.textContent = clock(from);
  toLabel.textContent = clock(to);
  const [start, end] = selection();
  const shown = points.filter((p) => p.tst >= start && p.tst <= end);
  const marks = transitions.filter((t) => t.tst >= start && t.tst <= end && t.lat !== null && t.lon !== null);
  trackLayer.clearLayers();
  if (shown.length > 1) L.polyline(shown.map((p) => L.latLng(p.lat, p.lon)), { weight: 4, opacity: 0.75 }).addTo(trackLayer);
  for (const p of shown) {
    L.circleMarker(L.latLng(p.lat, p.lon), { radius: 4, weight: 1, fillOpacity: 0.9, className: 'track-point' })
      .bindPopup(() => pointPopup(p))
      .addTo(trackLayer);
  }
  for (const t of marks) {
    const enter = t.event === 'enter';
    const icon = L.divIcon({
      className: 'transition-marker',
      html: h('span', { class: enter ? 'enter' : 'leave', title: `${enter ? 'Entered' : 'Left'} ${t.desc ?? 'a region'}` }, enter ? '⇥' : '↦'),
      iconSize: [24, 24],
      iconAnchor: [12, 12],
    });
    L.marker(L.latLng(t.lat!, t.lon!), { icon, alt: `${enter ? 'Entered' : 'Left'} ${t.desc ?? 'a region'}` })
      .bindPopup(() => h('div', {}, h('strong', {}, `${enter ? 'Entered' : 'Left'} ${t.desc ?? 'a region'}`), h('div', { class: 'small' }, dateTime(t.tst))))
      .addTo(trackLayer);
  }
  summary.textContent = `${shown.length} point${shown.length === 1 ? '' : 's'}, ${marks.length} transition${marks.length === 1 ? '' : 's'}`;
  summary.dataset.points = String(shown.length);
  for (const link of exports) link.href = `/api/locations/?${query(`&format=${link.dataset.format}`)}`;
  deleteRange.hidden = !deletable();
}

/** Loads the whole day of the chosen device; the slider then filters without new requests. */
async function load(): Promise<void> {
  status.clear();
  if (!deviceSelect.value || !dateInput.value) {
    points = [];
    transitions = [];
    render();
    return;
  }
  const start = at(0);
  const end = at(LAST_MINUTE) + 59;
  const range = `device_id=${deviceSelect.value}&start_time=${start}&end_time=${end}`;
  summary.textContent = 'Loading…';
  try {
    [points, transitions] = await Promise.all([
      get<Location[]>(`/api/locations/?${range}`),
      get<Transition[]>(`/api/transitions/?${range}`),
    ]);
  } catch (error) {
    points = [];
    transitions = [];
    status.show('error', message(error));
  }
  render();
  if (points.length > 0) map.fitBounds(L.latLngBounds(points.map((p) => L.latLng(p.lat, p.lon))), { padding: [30, 30], maxZoom: 16 });
}

/** Whether a redraw is already scheduled for the next frame. */
let pending = false;

/** Keeps the handles from crossing: the one being moved stops at the other. */
function onSlide(moved: HTMLInputElement): void {
  const from = Number(fromInput.value);
  const to = Number(toInput.value);
  if (from > to) {
    if (moved === fromInput) fromInput.value = String(to);
    else toInput.value = String(from);
  }
  // The handle last moved stays on top, so two handles at the same place can both move.
  fromInput.classList.toggle('on-top', moved === fromInput);
  // Labels follow the handle at once; the map is redrawn once per frame at most.
  fromLabel.textContent = clock(Number(fromInput.value));
  toLabel.textContent = clock(Number(toInput.value));
  if (!pending) {
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render();
    });
  }
}

fromInput.addEventListener('input', () => onSlide(fromInput));
toInput.addEventListener('input', () => onSlide(toInput));
deviceSelect.addEventListener('change', () => void load());
deleteRange.addEventListener('click', () => void deleteSelection());
dateInput.addEventListener('change', () => void load());

async function start(): Promise<void> {
  devices = await get<Device[]>('/api/devices/');
  if (devices.length === 0) {
    deviceSelect.append(h('option', { value: '' }, 'No devices yet'));
    deviceSelect.disabled = true;
  }
  const wanted = params.get('device');
  for (const d of devices) {
    deviceSelect.append(h('option', { value: d.id, selected: String(d.id) === wanted }, `${d.display_name || d.name} (${d.user})`));
  }
  await load();
}

start().catch((error: unknown) => status.show('error', message(error)));
