// About & Setup: the endpoints of the running server, and how to enter them in OwnTracks for
// each mode (MQTT, MQTT with TLS, HTTP).

import { h, type Children } from '../lib/dom';
import { saveBlob } from '../lib/api';
import { section, table } from '../lib/ui';
import type { Setup } from '../lib/types';

/** `host:port`, or why there is none. */
function at(setup: Setup, port: number | null, off: string): string {
  return port === null ? off : `${setup.host}:${port}`;
}

export function endpointsSection(setup: Setup): HTMLElement {
  const p = setup.ports;
  const rows: [string, string][] = [
    ['Web and REST API', setup.http_url],
    ['OwnTracks HTTP mode', setup.owntracks_http_url],
    ['MQTT', at(setup, p.mqtt, 'off')],
    ['MQTT over TLS', at(setup, p.mqtt_tls, 'off (no server certificate yet)')],
    ['MQTT over WebSocket', setup.websocket_url + (p.mqtt_ws === null ? '' : ` · ws://${setup.host}:${p.mqtt_ws}`)],
    ['MQTT over secure WebSocket', p.mqtt_wss === null ? 'off' : `wss://${setup.host}:${p.mqtt_wss}`],
    ['Live location feed (WebSocket)', setup.live_feed_url],
  ];
  return section(
    'Endpoints',
    h('p', { class: 'muted small' }, `Shown with the host name your browser used (${setup.host}); a phone needs a name or address it can reach.`),
    table(['Service', 'Address'], rows.map(([k, v]) => [k, h('code', { class: 'endpoint' }, v)]), ''),
  );
}

function steps(title: string, items: Children[][]): HTMLElement {
  return h('div', { class: 'mode' }, h('h3', {}, title), h('ol', {}, items.map((item) => h('li', {}, item))));
}

export function instructionsSection(setup: Setup): HTMLElement {
  const p = setup.ports;
  const user = setup.username;
  const code = (text: string): HTMLElement => h('code', {}, text);
  // A function: a DOM node can stand in one list only.
  const common = (): Children[][] => [
    ['Identification → Username: ', code(user), '; Password: your password or a device credential (Profile → Device credentials)'],
    ['Identification → Device ID: a short name for the phone, e.g. ', code('phone'), '; Tracker ID: two letters for the map'],
  ];
  const caDownload = setup.ca
    ? h(
        'button',
        {
          type: 'button',
          class: 'small',
          onclick: () => saveBlob(new Blob([setup.ca?.certificate_pem ?? ''], { type: 'application/x-pem-file' }), 'mytracks-ca.pem'),
        },
        'Download the CA certificate',
      )
    : null;
  return section(
    'Set up OwnTracks',
    h('p', {}, 'Easiest: create a configuration below and scan its QR code with the phone (or open the .otrc file on it). By hand, in the app’s Settings → Connection:'),
    steps('MQTT mode', [
      ['Mode: ', code('MQTT')],
      ['Host: ', code(setup.host), ', Port: ', code(p.mqtt === null ? 'off' : String(p.mqtt)), ', TLS: off'],
      ...common(),
    ]),
    steps('MQTT with TLS', [
      ['Mode: ', code('MQTT')],
      ['Host: ', code(setup.host), ', Port: ', code(p.mqtt_tls === null ? 'off — an admin issues a server certificate first' : String(p.mqtt_tls)), ', TLS: on'],
      setup.ca
        ? ['Trust the server’s CA “', setup.ca.common_name, '” (install it on the phone, or in the app: TLS → CA certificate) ', caDownload]
        : ['The built-in certificate authority is not set up yet (Admin Panel → PKI).'],
      ['Optionally log in with a client certificate instead of a password: Profile → Client certificate (.p12 on Android, .otrp on iOS).'],
      ...common(),
    ]),
    steps('HTTP mode', [
      ['Mode: ', code('HTTP')],
      ['URL: ', code(setup.owntracks_http_url)],
      ...common(),
    ]),
  );
}
