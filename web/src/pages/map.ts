// / — the live map: a marker per visible device (tracker id, accuracy circle, popup with time,
// battery, speed and online state), a short track tail, live updates from /ws/locations/, a
// device list with an online/offline filter and a "fit to devices" button.

import '../styles/map.css';
import { layout } from '../lib/layout';
import { createMap, L } from '../lib/map';
import { h, replace } from '../lib/dom';
import { get } from '../lib/api';
import { ago, dateTime } from '../lib/format';
import { message, toast } from '../lib/ui';
import type { Device, FeedEvent, Location } from '../lib/types';

/** How far back the track tail reaches, and how many points it keeps at most. */
const TAIL_SECONDS = 3600;
const TAIL_POINTS = 50;

type Filter = 'all' | 'online' | 'offline';

/** One device on the map and in the list. */
interface Tracked {
  id: number;
  user: string;
  name: string;
  displayName: string;
  tid: string;
  online: boolean;
  last: Location | null;
  tail: [number, number, number][];
  layer: L.LayerGroup;
  marker: L.Marker | null;
  pin: HTMLElement;
  circle: L.Circle | null;
  line: L.Polyline | null;
  item: HTMLLIElement;
}

const main = layout({ wide: true });
main.classList.add('map-page');
const listElement = h('ul', { class: 'device-list', 'aria-label': 'Devices' });
const liveStatus = h('span', { class: 'live-status badge off', role: 'status' }, 'Connecting…');
const mapElement = h('div', { class: 'map', id: 'map', role: 'region', 'aria-label': 'Map of devices' });
const filterBox = h('fieldset', { class: 'filter' }, h('legend', {}, 'Show'));
for (const [value, label] of [
  ['all', 'All'],
  ['online', 'Online'],
  ['offline', 'Offline'],
] as const) {
  const radio = h('input', { type: 'radio', name: 'filter', value, id: `filter-${value}`, checked: value === 'all' });
  radio.addEventListener('change', () => applyFilter());
  filterBox.append(h('span', { class: 'choice' }, radio, h('label', { for: radio.id }, label)));
}
const fitButton = h('button', { type: 'button', class: 'small', id: 'fit' }, 'Fit to devices');
const panel = h(
  'section',
  { class: 'panel', 'aria-labelledby': 'devices-title' },
  h('div', { class: 'panel-head' }, h('h1', { id: 'devices-title' }, 'Devices'), liveStatus),
  h('div', { class: 'panel-tools' }, filterBox, fitButton),
  listElement,
);
main.append(h('div', { class: 'map-layout' }, mapElement, panel));

const map = createMap(mapElement);
const devices = new Map<number, Tracked>();

fitButton.addEventListener('click', () => fit());

function filter(): Filter {
  const checked = filterBox.querySelector<HTMLInputElement>('input:checked');
  return (checked?.value ?? 'all') as Filter;
}

function visible(t: Tracked): boolean {
  const f = filter();
  return f === 'all' || (f === 'online') === t.online;
}

function applyFilter(): void {
  for (const t of devices.values()) {
    const show = visible(t);
    t.item.hidden = !show;
    if (show) t.layer.addTo(map);
    else t.layer.remove();
  }
  renderEmpty();
}

function renderEmpty(): void {
  listElement.querySelector('.empty')?.remove();
  const shown = [...devices.values()].filter((t) => !t.item.hidden).length;
  if (shown > 0) return;
  const text =
    devices.size === 0
      ? h('span', {}, 'No devices yet. Set up a phone on the ', h('a', { href: '/about/' }, 'About & Setup'), ' page.')
      : h('span', {}, 'No devices match the filter.');
  listElement.append(h('li', { class: 'empty muted' }, text));
}

/** Fits the map to every shown device with a position. */
function fit(): void {
  const points = [...devices.values()]
    .filter((t) => visible(t) && t.last)
    .map((t) => L.latLng(t.last!.lat, t.last!.lon));
  if (points.length === 1) map.setView(points[0]!, 15);
  else if (points.length > 1) map.fitBounds(L.latLngBounds(points), { padding: [40, 40], maxZoom: 16 });
}

function label(t: Tracked): string {
  return (t.tid || t.name.slice(0, 2)).toUpperCase();
}

function popup(t: Tracked): HTMLElement {
  const l = t.last;
  const rows: [string, string][] = [];
  if (l) {
    rows.push(['Time', `${dateTime(l.tst)} (${ago(l.tst)})`]);
    if (l.batt !== undefined) rows.push(['Battery', `${l.batt} %`]);
    if (l.vel !== undefined) rows.push(['Speed', `${l.vel} km/h`]);
    if (l.acc !== undefined) rows.push(['Accuracy', `± ${l.acc} m`]);
    rows.push(['Position', `${l.lat.toFixed(5)}, ${l.lon.toFixed(5)}`]);
  }
  return h(
    'div',
    { class: 'device-popup' },
    h('strong', {}, t.displayName),
    ' ',
    h('span', { class: t.online ? 'badge ok' : 'badge off' }, t.online ? 'online' : 'offline'),
    h('div', { class: 'muted small' }, `${t.user}/${t.name}`),
    h('dl', { class: 'facts small' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('a', { href: `/history/?device=${t.id}` }, 'History'),
  );
}

/** Redraws one device's marker, circle, tail and list entry from its state. */
function draw(t: Tracked): void {
  t.pin.className = `device-pin${t.online ? '' : ' offline'}`;
  t.pin.textContent = label(t);
  const l = t.last;
  if (l) {
    const where = L.latLng(l.lat, l.lon);
    t.pin.dataset.lat = String(l.lat);
    t.pin.dataset.lon = String(l.lon);
    if (!t.marker) {
      const icon = L.divIcon({ html: t.pin, className: 'device-marker', iconSize: [34, 34], iconAnchor: [17, 17], popupAnchor: [0, -18] });
      t.marker = L.marker(where, { icon, title: `${t.displayName} (${t.user})`, alt: t.displayName, riseOnHover: true });
      t.marker.bindPopup(() => popup(t));
      t.marker.addTo(t.layer);
    } else {
      t.marker.setLatLng(where);
    }
    if (l.acc !== undefined && l.acc > 0) {
      if (!t.circle) t.circle = L.circle(where, { radius: l.acc, weight: 1, fillOpacity: 0.12, interactive: false }).addTo(t.layer);
      else t.circle.setLatLng(where).setRadius(l.acc);
    }
    const path = t.tail.map(([lat, lon]) => L.latLng(lat, lon));
    if (!t.line) t.line = L.polyline(path, { weight: 3, opacity: 0.6, interactive: false }).addTo(t.layer);
    else t.line.setLatLngs(path);
    if (t.marker.isPopupOpen()) t.marker.getPopup()?.update();
  }
  const dot = h('span', { class: `dot ${t.online ? 'on' : 'off'}`, 'aria-hidden': 'true' });
  const state = h('span', { class: 'visually-hidden' }, t.online ? 'online' : 'offline');
  replace(
    t.item,
    h(
      'button',
      { type: 'button', class: 'device-item', 'aria-label': `${t.displayName}, ${t.online ? 'online' : 'offline'}` },
      dot,
      state,
      h('span', { class: 'device-text' },
        h('strong', {}, t.displayName),
        h('span', { class: 'muted small' }, ` ${t.user}`),
        h('span', { class: 'coords small' }, l ? `${l.lat.toFixed(5)}, ${l.lon.toFixed(5)} · ${ago(l.tst)}` : 'no position yet'),
      ),
    ),
  );
  t.item.hidden = !visible(t);
  t.item.dataset.online = String(t.online);
}

function track(id: number, user: string, name: string, displayName: string, tid: string | null, online: boolean): Tracked {
  const existing = devices.get(id);
  if (existing) return existing;
  const item = h('li', { class: 'device', 'data-device-id': id, 'data-device': `${user}/${name}` });
  const t: Tracked = {
    id,
    user,
    name,
    displayName,
    tid: tid ?? '',
    online,
    last: null,
    tail: [],
    layer: L.layerGroup(),
    marker: null,
    pin: h('div', { class: 'device-pin', 'data-device': `${user}/${name}` }),
    circle: null,
    line: null,
    item,
  };
  item.addEventListener('click', () => {
    if (t.marker) {
      map.setView(t.marker.getLatLng(), Math.max(map.getZoom(), 14));
      t.marker.openPopup();
    }
  });
  devices.set(id, t);
  listElement.append(item);
  if (visible(t)) t.layer.addTo(map);
  return t;
}

/** Number from a feed message field (the apps sometimes send numbers as strings). */
function num(value: unknown): number | undefined {
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
}

function addPoint(t: Tracked, l: Location): void {
  if (t.last && l.tst < t.last.tst) return; // an old message arriving late
  t.last = l;
  t.tail.push([l.lat, l.lon, l.tst]);
  const since = l.tst - TAIL_SECONDS;
  t.tail = t.tail.filter(([, , tst]) => tst >= since).slice(-TAIL_POINTS);
}

function onEvent(event: FeedEvent): void {
  if (event.device_id === undefined || !event.user || !event.device) return;
  const data = event.data ?? {};
  if (event.type === 'location') {
    const lat = num(data.lat);
    const lon = num(data.lon);
    const tst = num(data.tst);
    if (lat === undefined || lon === undefined || tst === undefined) return;
    const fresh = !devices.has(event.device_id);
    const t = track(event.device_id, event.user, event.device, event.device, typeof data.tid === 'string' ? data.tid : null, true);
    if (typeof data.tid === 'string') t.tid = data.tid;
    const l: Location = { tst, lat, lon };
    const acc = num(data.acc), batt = num(data.batt), vel = num(data.vel);
    if (acc !== undefined) l.acc = acc;
    if (batt !== undefined) l.batt = batt;
    if (vel !== undefined) l.vel = vel;
    t.online = true;
    addPoint(t, l);
    draw(t);
    if (fresh) {
      renderEmpty();
      fit();
    }
  } else if (event.type === 'presence') {
    const t = devices.get(event.device_id);
    if (!t) return;
    t.online = data.online === true;
    draw(t);
    applyFilter();
  } else if (event.type === 'transition') {
    const t = devices.get(event.device_id);
    const what = data.event === 'enter' ? 'entered' : 'left';
    toast(`${t?.displayName ?? event.device} ${what} ${typeof data.desc === 'string' ? data.desc : 'a region'}`);
  }
}

/** Loads devices, their last positions and recent tails; `fitAfter` fits the map to them. */
async function load(fitAfter: boolean): Promise<void> {
  const since = Math.floor(Date.now() / 1000) - TAIL_SECONDS;
  const [list, recent] = await Promise.all([
    get<Device[]>('/api/devices/'),
    get<Location[]>(`/api/locations/?start_time=${since}`).catch(() => [] as Location[]),
  ]);
  for (const d of list) {
    const t = track(d.id, d.user, d.name, d.display_name || d.name, d.tid, d.online);
    t.displayName = d.display_name || d.name;
    t.online = d.online;
    if (d.tid) t.tid = d.tid;
    t.tail = [];
    t.last = null;
  }
  for (const l of recent) {
    const t = l.device_id === undefined ? undefined : devices.get(l.device_id);
    if (t) addPoint(t, l);
  }
  for (const d of list) {
    const t = devices.get(d.id)!;
    if (d.last_location) addPoint(t, d.last_location);
    draw(t);
  }
  applyFilter();
  if (fitAfter) fit();
}

let retry = 1000;
/** The live feed; reconnects with a growing delay and reloads what it may have missed. */
function connect(): void {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}/ws/locations/`);
  socket.addEventListener('open', () => {
    retry = 1000;
    liveStatus.textContent = 'Live';
    liveStatus.className = 'live-status badge ok';
  });
  socket.addEventListener('message', (message) => {
    try {
      const event = JSON.parse(String(message.data)) as FeedEvent;
      if (event.type === 'lagged') void load(false);
      else onEvent(event);
    } catch {
      // Not JSON: ignore.
    }
  });
  socket.addEventListener('close', () => {
    liveStatus.textContent = 'Reconnecting…';
    liveStatus.className = 'live-status badge off';
    setTimeout(() => {
      connect();
      void load(false).catch(() => undefined);
    }, retry);
    retry = Math.min(retry * 2, 30_000);
  });
}

setInterval(() => devices.forEach((t) => draw(t)), 30_000);

load(true)
  .catch((error: unknown) => toast(`Cannot load devices: ${message(error)}`))
  .finally(() => {
    renderEmpty();
    connect();
  });
