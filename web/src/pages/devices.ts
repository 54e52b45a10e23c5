// /devices/ — IoT devices: the list (admins see everybody's, with the owner) with presence
// refreshed every 10 s, registration with the MQTT login shown once, a side panel per device
// (telemetry, commands, settings, password, removal; `#<device id>` opens it), and commands to
// a whole group. Refreshes redraw only the data: what is typed in a form stays.

import '../styles/devices.css';
import { layout } from '../lib/layout';
import { h, replace } from '../lib/dom';
import { get, post } from '../lib/api';
import { boot, me } from '../lib/boot';
import { field, input, message, notice, section, table } from '../lib/ui';
import type { Setup, User } from '../lib/types';
import { commandForm } from '../devices/commands';
import type { Connection } from '../devices/connect';
import { openDetails, type Details } from '../devices/details';
import { registerForm } from '../devices/register';
import { created, presenceBadge, relative } from '../devices/util';
import type { FleetCommand, FleetHistory, IotDevice, MqttBoot } from '../devices/types';

/** How often the list (presence, last seen) and an open panel reload. */
const REFRESH_MS = 10_000;

const user = me();
const admin = user.is_admin;
const mqttBoot = (boot as unknown as { mqtt?: MqttBoot }).mqtt;
const connection: Connection = { base: mqttBoot?.iot_base_topic ?? 'iot', setup: null };

const main = layout();
main.classList.add('devices-page');

let devices: IotDevice[] = [];
let loaded = false;
let details: Details | null = null;
/** Admins: the active users, offered as owners. */
let owners: string[] = [];

const groups = (): string[] => [...new Set(devices.map((d) => d.group).filter((g): g is string => !!g))].sort();

// ---- the list -------------------------------------------------------------------------------

const listStatus = notice();
const list = h('div', { id: 'device-list' });
const summary = h('p', { class: 'muted small summary', id: 'device-summary' });
const filter = input({ type: 'search', name: 'filter', placeholder: 'id, group, description' + (admin ? ', owner' : ''), autocomplete: 'off', spellcheck: 'false' });
filter.addEventListener('input', () => drawList());
const filterField = field('Filter', filter);

function matches(device: IotDevice, text: string): boolean {
  if (!text) return true;
  const haystack = [device.device_id, device.group ?? '', device.description, admin ? device.owner : ''].join(' ').toLowerCase();
  return text
    .toLowerCase()
    .split(/\s+/)
    .every((word) => haystack.includes(word));
}

function emptyState(): HTMLElement {
  const start = h('button', { type: 'button', class: 'primary' }, 'Register a device');
  start.addEventListener('click', () => register.focus());
  return h(
    'div',
    { class: 'empty-state' },
    h('h3', {}, 'No devices yet'),
    h(
      'p',
      {},
      'Register a sensor, relay or any other MQTT device below. It gets its own MQTT login, publishes readings under ',
      h('code', {}, `${connection.base}/devices/<id>/telemetry/…`),
      ' that are stored here, and takes commands from this page.',
    ),
    h('p', { class: 'muted small' }, 'On the server: ', h('code', {}, 'mytracks device add <id> --owner <user>'), '.'),
    start,
  );
}

/** What the table shows now (see drawList). */
let drawn = '';

function drawList(): void {
  if (!loaded) return;
  // The refresh replaces the rows: keep the keyboard focus on the same device.
  const focused = document.activeElement instanceof HTMLElement ? document.activeElement.dataset.key : undefined;
  const online = devices.filter((d) => d.online).length;
  replace(
    summary,
    `${devices.length} device${devices.length === 1 ? '' : 's'} · ${online} online`,
    h('span', { class: 'updated' }, ` · updated ${new Date().toLocaleTimeString()}`),
  );
  // Nothing to filter in an empty list.
  filterField.hidden = devices.length === 0;
  if (devices.length === 0) {
    drawn = '';
    replace(list, emptyState());
    return;
  }
  const text = filter.value.trim();
  const shown = devices.filter((d) => matches(d, text));
  // Redrawn only when something visible changed, so that a screen reader's place in the
  // table is not lost every 10 s.
  const signature = JSON.stringify([text, shown, shown.map((d) => relative(d.last_seen).textContent)]);
  if (signature === drawn && list.firstChild) return;
  drawn = signature;
  const headers = ['Device', ...(admin ? ['Owner'] : []), 'Status', 'Group', 'Description', 'Last seen', 'Registered'];
  replace(
    list,
    table(
      headers,
      shown.map((d) => [
        h(
          'button',
          { type: 'button', class: 'linklike device-open', 'data-key': `open:${d.device_id}`, 'data-device': d.device_id, 'aria-haspopup': 'dialog', onclick: () => show(d.device_id) },
          d.device_id,
          h('span', { class: 'visually-hidden' }, ' details'),
        ),
        ...(admin ? [d.owner] : []),
        presenceBadge(d.online),
        d.group ? h('span', { class: 'group' }, d.group) : h('span', { class: 'muted' }, '—'),
        d.description || h('span', { class: 'muted' }, '—'),
        relative(d.last_seen),
        created(d.created_at),
      ]),
      `No device matches “${text}”.`,
    ),
  );
  if (focused) list.querySelector<HTMLElement>(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

let loading = false;
/** A refresh asked for while one was under way (after a change): it runs once more. */
let again = false;
async function refresh(): Promise<void> {
  if (loading) {
    again = true;
    return;
  }
  loading = true;
  try {
    do {
      again = false;
      devices = await get<IotDevice[]>('/api/iot/devices/');
      loaded = true;
      listStatus.clear();
      drawList();
      drawGroups();
      if (details) {
        const current = devices.find((d) => d.device_id === details?.deviceId);
        if (current) details.update(current);
      }
    } while (again);
  } catch (error) {
    listStatus.show('error', `Could not load the devices: ${message(error)}`);
  } finally {
    loading = false;
  }
}

// ---- one device -----------------------------------------------------------------------------

function show(deviceId: string): void {
  const device = devices.find((d) => d.device_id === deviceId);
  if (!device) return;
  details?.close();
  history.replaceState(null, '', `#${encodeURIComponent(deviceId)}`);
  const opened: Details = openDetails(device, {
    connection,
    groups,
    changed: refresh,
    closed: () => {
      if (details !== opened) return;
      details = null;
      history.replaceState(null, '', location.pathname + location.search);
      list.querySelector<HTMLElement>(`[data-key="${CSS.escape(`open:${deviceId}`)}"]`)?.focus();
    },
  });
  details = opened;
}

// ---- registering ----------------------------------------------------------------------------

const register = registerForm({
  admin,
  connection: () => connection,
  registered: async () => {
    await refresh();
  },
});

// ---- fleet commands -------------------------------------------------------------------------

const groupSelect = h('select', { name: 'group', required: true });
const fleetHint = h('p', { class: 'muted small' });
const fleet = commandForm({
  id: 'fleet-form',
  submit: 'Send to group',
  before: [field('Group', groupSelect)],
  send: async (command, parameters) => {
    const group = groupSelect.value;
    if (!group) throw new Error('Choose a group.');
    const sent = await post<FleetCommand>(`/api/iot/fleets/${encodeURIComponent(group)}/commands/`, { command, parameters });
    followFleet();
    return `Sent “${sent.command}” to ${sent.devices} device${sent.devices === 1 ? '' : 's'} in ${group} (on ${connection.base}/fleet/${group}/commands).`;
  },
});

/** The chosen group's recent commands: how many devices completed each delivery and answered. */
const fleetHistory = h('div', { id: 'fleet-history' });

async function drawFleetHistory(): Promise<void> {
  const group = groupSelect.value;
  if (!group) {
    replace(fleetHistory);
    return;
  }
  try {
    const history = await get<FleetHistory>(`/api/iot/fleets/${encodeURIComponent(group)}/commands/`);
    if (groupSelect.value !== group) return;
    replace(
      fleetHistory,
      h('h3', { class: 'small' }, `Recent commands to ${group}`),
      table(
        ['Command', 'Sent', 'Delivered', 'Answered'],
        history.commands.slice(0, 10).map((c) => [
          h('strong', { 'data-command-id': c.command_id }, c.command),
          relative(c.created_at),
          h('span', { class: 'delivered-count' }, `${c.delivered_count} of ${history.devices}`),
          String(c.acknowledged_count),
        ]),
        'No commands sent to this group yet.',
      ),
    );
  } catch (error) {
    replace(fleetHistory, h('p', { class: 'muted small' }, message(error)));
  }
}

/** After a send: follow the deliveries for a while (they are counted within a second). */
let following: number | undefined;
function followFleet(): void {
  window.clearInterval(following);
  let left = 10;
  void drawFleetHistory();
  following = window.setInterval(() => {
    left -= 1;
    if (left <= 0) window.clearInterval(following);
    void drawFleetHistory();
  }, 1500);
}
groupSelect.addEventListener('change', () => void drawFleetHistory());

function drawGroups(): void {
  const names = groups();
  const chosen = groupSelect.value;
  const current = [...groupSelect.options].map((o) => o.value).filter(Boolean);
  register.suggest(names, owners);
  const count = (g: string): number => devices.filter((d) => d.group === g).length;
  // Rebuilt only when the groups change, keeping the choice.
  if (names.length === 0 || current.join('\n') !== names.join('\n')) {
    replace(
      groupSelect,
      names.length === 0 ? h('option', { value: '' }, 'No groups yet') : names.map((g) => h('option', { value: g, selected: g === chosen }, `${g} (${count(g)})`)),
    );
    void drawFleetHistory();
  } else {
    for (const option of groupSelect.options) option.textContent = `${option.value} (${count(option.value)})`;
  }
  groupSelect.disabled = names.length === 0;
  fleet.form.querySelector<HTMLButtonElement>('button[type=submit]')!.disabled = names.length === 0;
  replace(
    fleetHint,
    names.length === 0
      ? 'Put devices in a group (when registering, or in their settings) to command them all at once.'
      : `Published once at QoS 2 on ${connection.base}/fleet/<group>/commands; every device of the group subscribed there receives it.`,
  );
}

// ---- the page -------------------------------------------------------------------------------

main.append(
  h('h1', {}, 'Devices'),
  h(
    'p',
    { class: 'muted intro' },
    admin ? 'Every user’s IoT devices. ' : 'Your IoT devices. ',
    'Each has its own MQTT login, sends telemetry and takes commands under ',
    h('code', {}, `${connection.base}/devices/<id>/`),
    '. Presence refreshes every 10 s.',
  ),
  section(
    admin ? 'All devices' : 'My devices',
    h('div', { class: 'row toolbar' }, filterField, summary),
    listStatus.element,
    list,
  ),
  h('div', { class: 'grid two' }, section('Register a device', register.element), section('Fleet command', fleetHint, fleet.form, fleetHistory)),
);
replace(list, h('p', { class: 'muted' }, 'Loading…'));

void (async () => {
  const [setup] = await Promise.all([get<Setup>('/api/setup/').catch(() => null), refresh()]);
  connection.setup = setup;
  if (admin) {
    owners = await get<User[]>('/api/admin/users/')
      .then((users) => users.filter((u) => u.is_active).map((u) => u.username))
      .catch(() => []);
    drawGroups();
  }
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted && devices.some((d) => d.device_id === wanted)) show(wanted);
})();

window.setInterval(() => {
  if (document.hidden) return;
  void refresh();
  void details?.poll();
}, REFRESH_MS);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) {
    void refresh();
    void details?.poll();
  }
});
