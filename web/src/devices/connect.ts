// How a device talks to the broker: where to connect (the running server's listeners, from
// GET /api/setup/), its login, and the topics it may use under the base topic.

import { h, type Children } from '../lib/dom';
import { copyButton } from '../lib/ui';
import type { Setup } from '../lib/types';

export interface Connection {
  base: string;
  setup: Setup | null;
}

/** The broker addresses a device can use. */
function addresses(setup: Setup | null): [string, string][] {
  if (!setup) return [['MQTT', `${location.hostname} (see About & Setup for the ports)`]];
  const p = setup.ports;
  const rows: [string, string][] = [];
  if (p.mqtt !== null) rows.push(['MQTT (TCP)', `${setup.host}:${p.mqtt}`]);
  if (p.mqtt_tls !== null) rows.push(['MQTT over TLS', `${setup.host}:${p.mqtt_tls}`]);
  rows.push(['MQTT over WebSocket', setup.websocket_url]);
  if (p.mqtt_wss !== null) rows.push(['Secure WebSocket', `wss://${setup.host}:${p.mqtt_wss}`]);
  return rows;
}

/** The topics of one device, as a definition list. */
export function topicList(connection: Connection, deviceId: string, group: string | null): HTMLElement {
  const root = `${connection.base}/devices/${deviceId}`;
  const code = (text: string): HTMLElement => h('code', {}, text);
  const lines = (...items: Children[][]): HTMLElement => h('ul', { class: 'plain' }, items.map((line) => h('li', {}, line)));
  return h(
    'dl',
    { class: 'facts topics' },
    h('dt', {}, 'Publishes'),
    h(
      'dd',
      {},
      lines(
        [code(`${root}/telemetry/<name>`), ' — JSON readings, stored (QoS 1/2 acknowledged once stored)'],
        [code(`${root}/status/online`), ' | ', code('offline'), ' | ', code('heartbeat'), ' — presence (make ', code('offline'), ' its will)'],
        [code(`${root}/commands/ack`), ' — answers: ', code('{"command_id": "...", ...}')],
      ),
    ),
    h('dt', {}, 'Subscribes (QoS 2)'),
    h(
      'dd',
      {},
      lines(
        [code(`${root}/commands/#`), ' — commands: ', code('{"command_id", "command", "parameters", "timestamp"}')],
        [code(`${root}/config`), ' — its configuration (retained)'],
        [code(`${connection.base}/fleet/${group ?? '<group>'}/commands`), group ? ' — commands to its group' : ' — once it is in a group'],
      ),
    ),
  );
}

/** Where and how to connect, plus the topics, for a device just registered (or any). */
export function connectionHints(connection: Connection, deviceId: string, group: string | null, password?: string): HTMLElement {
  const where = addresses(connection.setup);
  const tcp = connection.setup?.ports.mqtt ?? null;
  const host = connection.setup?.host ?? location.hostname;
  const example =
    tcp === null
      ? null
      : `mosquitto_pub -h ${host} -p ${tcp} -u ${deviceId} -P '${password ?? 'PASSWORD'}' -q 1 -t ${connection.base}/devices/${deviceId}/telemetry/temperature -m '{"celsius": 21.5}'`;
  return h(
    'div',
    { class: 'connect-hints' },
    h(
      'dl',
      { class: 'facts' },
      where.map(([name, address]) => [h('dt', {}, name), h('dd', {}, h('code', { class: 'endpoint' }, address))]),
      h('dt', {}, 'Username'),
      h('dd', {}, h('code', {}, deviceId), h('span', { class: 'muted small' }, ' (a steady client id, e.g. the same, keeps its session; a second connection needs another one)')),
    ),
    h('h4', {}, 'Topics'),
    topicList(connection, deviceId, group),
    example
      ? h('div', { class: 'example' }, h('h4', {}, 'Try it'), h('pre', { class: 'command-line' }, example), copyButton(example, 'Copy command'))
      : null,
  );
}
