// /console/ — the browser MQTT console: MQTT.js over WebSocket to `/mqtt` on this origin, logged
// in as the user with a credential the server makes for this browser session (asked for at
// each connect, never written into the page), so the broker's ACL applies as to any of the
// user's clients. Subscribe, publish, and watch messages arrive live.

import '../styles/console.css';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { layout } from '../lib/layout';
import { h, replace } from '../lib/dom';
import { post } from '../lib/api';
import { boot, me } from '../lib/boot';
import { dateTime } from '../lib/format';
import { checkbox, field, input, message, notice, section } from '../lib/ui';

/** What the server put into the page for the console (crates/http/src/web/pages.rs). */
interface ConsoleSettings {
  path: string;
  ws_port: number | null;
  wss_port: number | null;
  tcp_port: number | null;
  iot_base_topic: string;
  suggestions: string[];
}

/** `POST /api/mqtt/console/credential/`. */
interface ConsoleCredential {
  username: string;
  password: string;
  client_id: string;
  expires_at: number;
  /** The broker's WebSocket: a path on this origin (embedded broker) or a URL (`[web]
   * console_websocket_url`, e.g. a cluster's broker). */
  path?: string;
  url?: string;
  protocol_version: 4 | 5;
}

type QoS = 0 | 1 | 2;

/** The most messages kept on screen; older ones drop off the bottom. */
const MAX_MESSAGES = 500;
/** Reconnect delays after an unexpected disconnect, growing up to the last. */
const RETRY_SECONDS = [2, 5, 10, 30];

const settings = (boot as unknown as { mqtt: ConsoleSettings }).mqtt;
const user = me();
const main = layout({ wide: true });
main.classList.add('console');

// ---- connection ---------------------------------------------------------------------------

const stateBadge = h('span', { class: 'badge off', id: 'mqtt-state' }, 'Disconnected');
const connectionInfo = h('p', { class: 'small muted', id: 'mqtt-info' });
const connectButton = h('button', { type: 'button', class: 'primary' }, 'Connect');
const disconnectButton = h('button', { type: 'button', disabled: true }, 'Disconnect');
const connectionStatus = notice();

let client: MqttClient | null = null;
/** Whether the user wants to be connected (a drop then means: reconnect). */
let wanted = false;
let retries = 0;
let retryTimer: number | undefined;

function setState(kind: 'ok' | 'off' | 'bad', text: string): void {
  stateBadge.className = `badge ${kind}`;
  stateBadge.textContent = text;
}

function socketUrl(path: string): string {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}${path}`;
}

async function connect(): Promise<void> {
  window.clearTimeout(retryTimer);
  wanted = true;
  connectButton.disabled = true;
  disconnectButton.disabled = false;
  connectionStatus.clear();
  setState('off', 'Connecting…');
  let credential: ConsoleCredential;
  try {
    credential = await post<ConsoleCredential>('/api/mqtt/console/credential/', { tab: tabId() });
  } catch (error) {
    failed(`Could not get a console credential: ${message(error)}`);
    return;
  }
  const url = credential.url ?? socketUrl(credential.path ?? '/mqtt');
  const options: IClientOptions = {
    protocolVersion: credential.protocol_version,
    username: credential.username,
    password: credential.password,
    clientId: credential.client_id,
    clean: true,
    keepalive: 30,
    connectTimeout: 10_000,
    // Reconnecting is ours: each attempt needs a fresh credential.
    reconnectPeriod: 0,
  };
  const next = mqtt.connect(url, options);
  client = next;
  next.on('connect', () => {
    if (client !== next) return;
    retries = 0;
    setState('ok', 'Connected');
    replace(
      connectionInfo,
      `${url} as ${credential.username} (client ${credential.client_id}, MQTT ${credential.protocol_version === 5 ? '5.0' : '3.1.1'}); `,
      `the session's credential works until ${dateTime(credential.expires_at)}.`,
    );
    resubscribe();
    publishButton.disabled = false;
  });
  next.on('message', (topic, payload, packet) => showMessage(topic, payload, packet));
  next.on('disconnect', (packet) => {
    const code = packet.reasonCode ?? 0;
    connectionStatus.show('error', `The broker closed the connection: ${reasonText(code)}.`);
  });
  next.on('error', (error) => {
    if (client === next) connectionStatus.show('error', error.message);
  });
  next.on('close', () => {
    if (client !== next) return;
    publishButton.disabled = true;
    markSubscriptionsPending();
    next.end(true);
    client = null;
    if (wanted) {
      const wait = RETRY_SECONDS[Math.min(retries, RETRY_SECONDS.length - 1)];
      retries += 1;
      setState('bad', `Disconnected, retrying in ${wait} s`);
      retryTimer = window.setTimeout(() => void connect(), wait * 1000);
    } else {
      setState('off', 'Disconnected');
    }
    connectButton.disabled = false;
  });
}

/**
 * This tab's id, kept across reloads of the tab: the server keeps one console credential per
 * tab, so two tabs of one session do not replace (and disconnect) each other's.
 */
function tabId(): string {
  const key = 'mytracks-console-tab';
  let id = sessionStorage.getItem(key);
  if (!id || !/^[A-Za-z0-9]{1,32}$/.test(id)) {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    id = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
    sessionStorage.setItem(key, id);
  }
  return id;
}

function failed(text: string): void {
  wanted = false;
  setState('bad', 'Not connected');
  connectionStatus.show('error', text);
  connectButton.disabled = false;
  disconnectButton.disabled = true;
}

function disconnect(): void {
  wanted = false;
  window.clearTimeout(retryTimer);
  const current = client;
  client = null;
  current?.end();
  publishButton.disabled = true;
  markSubscriptionsPending();
  setState('off', 'Disconnected');
  connectButton.disabled = false;
  disconnectButton.disabled = true;
}

connectButton.addEventListener('click', () => void connect());
disconnectButton.addEventListener('click', disconnect);

// ---- subscriptions ------------------------------------------------------------------------

interface Subscription {
  filter: string;
  qos: QoS;
  /** Granted QoS once the broker answered; null while waiting. */
  granted: number | null;
}
const subscriptions = new Map<string, Subscription>();
const subscriptionList = h('ul', { class: 'subscriptions', id: 'subscriptions' });
const subscribeStatus = notice();
const filterInput = input({ name: 'filter', list: 'topic-suggestions', required: true, autocomplete: 'off', spellcheck: 'false', value: settings.suggestions[0] ?? '' });
const subscribeQos = qosSelect('subscribe-qos');
const suggestions = h('datalist', { id: 'topic-suggestions' }, settings.suggestions.map((s) => h('option', { value: s })));

const subscribeForm = h(
  'form',
  { id: 'subscribe-form', class: 'row' },
  field('Topic filter', filterInput, `Wildcards + and # allowed, e.g. ${settings.suggestions[0] ?? 'owntracks/#'}`),
  field('QoS', subscribeQos),
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Subscribe')),
);
subscribeForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const filter = filterInput.value.trim();
  if (!filter) return;
  subscribe(filter, Number(subscribeQos.value) as QoS);
});

function subscribe(filter: string, qos: QoS): void {
  subscribeStatus.clear();
  subscriptions.set(filter, { filter, qos, granted: null });
  drawSubscriptions();
  if (client?.connected) send(filter, qos);
}

/** Sends SUBSCRIBE and records what the broker granted; a refusal removes the entry. */
function send(filter: string, qos: QoS): void {
  client?.subscribe(filter, { qos }, (error, granted) => {
    const entry = subscriptions.get(filter);
    if (!entry) return;
    if (error) {
      subscribeStatus.show('error', `Subscribing to ${filter} failed: ${error.message}`);
      return;
    }
    const code = granted?.[0]?.qos ?? 0x80;
    if (code >= 0x80) {
      subscriptions.delete(filter);
      subscribeStatus.show('error', `Subscription to ${filter} refused: ${reasonText(code)}.`);
    } else {
      entry.granted = code;
      subscribeStatus.show('success', `Subscribed to ${filter} (QoS ${code}).`);
    }
    drawSubscriptions();
  });
}

function unsubscribe(filter: string): void {
  subscriptions.delete(filter);
  client?.unsubscribe(filter);
  subscribeStatus.show('info', `Unsubscribed from ${filter}.`);
  drawSubscriptions();
}

function resubscribe(): void {
  for (const entry of subscriptions.values()) {
    entry.granted = null;
    send(entry.filter, entry.qos);
  }
  drawSubscriptions();
}

function markSubscriptionsPending(): void {
  for (const entry of subscriptions.values()) entry.granted = null;
  drawSubscriptions();
}

function drawSubscriptions(): void {
  if (subscriptions.size === 0) {
    replace(subscriptionList, h('li', { class: 'muted' }, 'No subscriptions yet.'));
    return;
  }
  replace(
    subscriptionList,
    [...subscriptions.values()].map((entry) =>
      h(
        'li',
        { 'data-filter': entry.filter },
        h('code', {}, entry.filter),
        entry.granted === null
          ? h('span', { class: 'badge off' }, 'pending')
          : h('span', { class: 'badge ok' }, `QoS ${entry.granted}`),
        h('button', { type: 'button', class: 'small', 'aria-label': `Unsubscribe from ${entry.filter}`, onclick: () => unsubscribe(entry.filter) }, 'Unsubscribe'),
      ),
    ),
  );
}

// ---- publishing ---------------------------------------------------------------------------

const publishStatus = notice();
const topicInput = input({ name: 'topic', list: 'topic-suggestions', required: true, autocomplete: 'off', spellcheck: 'false' });
const payloadInput = h('textarea', { name: 'payload', rows: 4, spellcheck: 'false', placeholder: '{"hello": "world"}' });
const publishQos = qosSelect('publish-qos', 1);
const retain = checkbox('Retain');
const publishButton = h('button', { type: 'submit', class: 'primary', disabled: true }, 'Publish');
const publishForm = h(
  'form',
  { id: 'publish-form' },
  field('Topic', topicInput, 'No wildcards. QoS 1 or 2 tell you whether the broker accepted it.'),
  field('Payload', payloadInput),
  h('div', { class: 'row' }, field('QoS', publishQos), retain.wrap, h('div', { class: 'actions' }, publishButton)),
);
publishForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const topic = topicInput.value.trim();
  const current = client;
  if (!topic || !current?.connected) return;
  const qos = Number(publishQos.value) as QoS;
  publishStatus.clear();
  publishButton.disabled = true;
  current.publish(topic, payloadInput.value, { qos, retain: retain.box.checked }, (error) => {
    publishButton.disabled = !client?.connected;
    if (error) {
      const code = (error as { code?: number }).code;
      publishStatus.show('error', `Refused: ${typeof code === 'number' ? reasonText(code) : error.message}.`);
    } else {
      publishStatus.show('success', qos === 0 ? `Sent to ${topic} (QoS 0: no acknowledgement).` : `Published to ${topic} (QoS ${qos}, acknowledged).`);
    }
  });
});

// ---- messages -----------------------------------------------------------------------------

const log = h('ol', { class: 'messages', id: 'messages', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions' });
const counter = h('span', { class: 'muted small', id: 'message-count' }, '0 messages');
let received = 0;
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The payload as text: pretty JSON, plain UTF-8, or hex for binary. */
function render(payload: Uint8Array): { text: string; kind: string } {
  let text: string;
  try {
    text = decoder.decode(payload);
  } catch {
    const hex = [...payload.slice(0, 256)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    return { text: payload.length > 256 ? `${hex} …` : hex, kind: `binary, ${payload.length} bytes` };
  }
  try {
    return { text: JSON.stringify(JSON.parse(text), null, 2), kind: 'JSON' };
  } catch {
    return { text, kind: 'text' };
  }
}

function showMessage(topic: string, payload: Uint8Array, packet: IPublishPacket): void {
  received += 1;
  counter.textContent = `${received} message${received === 1 ? '' : 's'}`;
  const body = render(payload);
  const item = h(
    'li',
    { 'data-topic': topic },
    h(
      'div',
      { class: 'meta' },
      h('time', {}, new Date().toLocaleTimeString()),
      h('code', { class: 'topic' }, topic),
      h('span', { class: 'badge' }, `QoS ${packet.qos}`),
      packet.retain ? h('span', { class: 'badge off' }, 'retained') : null,
      h('span', { class: 'muted small' }, body.kind),
    ),
    h('pre', { class: 'payload' }, body.text),
  );
  log.prepend(item);
  while (log.children.length > MAX_MESSAGES) log.lastElementChild?.remove();
}

const clearButton = h('button', { type: 'button', class: 'small' }, 'Clear');
clearButton.addEventListener('click', () => {
  replace(log);
  received = 0;
  counter.textContent = '0 messages';
});

// ---- helpers ------------------------------------------------------------------------------

function qosSelect(id: string, selected: QoS = 0): HTMLSelectElement {
  return h('select', { id, name: id }, ([0, 1, 2] as const).map((q) => h('option', { value: q, selected: q === selected }, String(q))));
}

/** MQTT 5 reason codes the broker may answer a console with. */
const REASONS: Record<number, string> = {
  0x80: 'unspecified error',
  0x83: 'implementation specific error',
  0x87: 'not authorized',
  0x8f: 'topic filter invalid',
  0x90: 'topic name invalid',
  0x91: 'packet identifier in use',
  0x96: 'message rate too high',
  0x97: 'quota exceeded',
  0x98: 'administrative action',
  0x99: 'payload format invalid',
  0x8e: 'session taken over',
  0x8b: 'server shutting down',
  0xa2: 'wildcard subscriptions not supported',
};

function reasonText(code: number): string {
  return `${REASONS[code] ?? 'error'} (0x${code.toString(16).padStart(2, '0')})`;
}

// ---- page ---------------------------------------------------------------------------------

const endpoints = [
  settings.tcp_port ? `TCP ${location.hostname}:${settings.tcp_port}` : null,
  settings.ws_port ? `WebSocket port ${settings.ws_port}` : null,
  settings.wss_port ? `WebSocket TLS port ${settings.wss_port}` : null,
].filter((e): e is string => e !== null);

main.append(
  h('h1', {}, 'MQTT console'),
  h(
    'p',
    { class: 'muted' },
    `Talk to the broker as ${user.username}: what you may publish and read is what your MQTT clients may. `,
    `Other clients reach it at ${endpoints.join(', ') || 'this address'}; IoT devices live under ${settings.iot_base_topic}/devices/.`,
  ),
  section('Connection', h('div', { class: 'row connection' }, stateBadge, connectButton, disconnectButton), connectionInfo, connectionStatus.element),
  h(
    'div',
    { class: 'grid two' },
    section('Subscribe', subscribeForm, suggestions, subscribeStatus.element, subscriptionList),
    section('Publish', publishForm, publishStatus.element),
  ),
  section('Messages', h('div', { class: 'row' }, counter, clearButton), log),
);
drawSubscriptions();
void connect();
