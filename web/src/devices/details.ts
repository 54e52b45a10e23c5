// One device in a side panel (a modal <dialog>: focus stays inside, Escape closes, a full
// screen on a phone): its facts, the latest reading per telemetry topic with downloads of the
// last day, commands with their history, settings, password rotation and removal. Its data
// refreshes while it is open; the forms keep what was typed.

import { h, replace, uid } from '../lib/dom';
import { api, del, get, patch, post } from '../lib/api';
import { confirmDialog } from '../lib/dialog';
import { field, input, message, notice, secretBox, table, toast } from '../lib/ui';
import { commandForm, historyTable } from './commands';
import { connectionHints, type Connection } from './connect';
import { created, exact, fieldErrors, parseParameters, presenceBadge, relative, telemetryValue } from './util';
import type { IotCommand, IotDevice, LatestTelemetry, Rotated } from './types';

/** After sending a command, how often and how long the history is reloaded to follow it. */
const WATCH_MS = 1000;
const WATCH_ROUNDS = 30;

export interface Details {
  readonly deviceId: string;
  /** New facts from the device list (presence, group, ...). */
  update(device: IotDevice): void;
  /** Reloads the telemetry and the commands. */
  poll(): Promise<void>;
  close(): void;
}

export interface DetailsContext {
  connection: Connection;
  /** The groups of the listed devices, offered in the group field. */
  groups(): string[];
  /** Something changed (saved, rotated, removed): the page reloads its list. */
  changed(): Promise<void>;
  closed(): void;
}

const enc = encodeURIComponent;

export function openDetails(first: IotDevice, context: DetailsContext): Details {
  let device = first;
  const id = device.device_id;
  const path = `/api/iot/devices/${enc(id)}`;
  let open = true;
  let watchTimer: number | undefined;

  // ---- header and facts ----
  const titleId = uid('device-title');
  const badge = h('span', { class: 'presence-slot' });
  const closeButton = h('button', { type: 'button', class: 'small close', 'aria-label': 'Close details' }, '✕ Close');
  const facts = h('dl', { class: 'facts overview' });
  const drawFacts = (): void => {
    replace(badge, presenceBadge(device.online));
    const fact = (term: string, value: Node | string): Node[] => [h('dt', {}, term), h('dd', {}, value)];
    replace(
      facts,
      fact('Owner', device.owner),
      fact('Group', device.group ?? h('span', { class: 'muted' }, 'none')),
      fact('Description', device.description || h('span', { class: 'muted' }, '—')),
      fact('Last seen', relative(device.last_seen)),
      fact('Registered', created(device.created_at)),
      device.rotated_at ? fact('Password rotated', relative(device.rotated_at)) : [],
    );
  };

  // ---- telemetry ----
  const telemetryStatus = notice();
  const latest = h('div', { id: 'telemetry-latest', 'aria-live': 'off' });
  const download = (format: 'csv' | 'json', text: string): HTMLAnchorElement => {
    const link = h('a', { class: 'button small', download: `${id}-telemetry.${format}`, 'data-format': format }, text);
    const url = (): string => {
      const end = Math.floor(Date.now() / 1000);
      return `${path}/telemetry/?start_time=${end - 86_400}&end_time=${end}&format=${format}`;
    };
    link.href = url();
    // The window ends when the link is used, not when it was drawn.
    link.addEventListener('click', () => (link.href = url()));
    return link;
  };
  const downloads = h('div', { class: 'actions downloads', role: 'group', 'aria-label': 'Download the last 24 hours' }, h('span', { class: 'label' }, 'Last 24 h:'), download('csv', 'CSV'), download('json', 'JSON'));
  let loadingTelemetry = false;
  const loadTelemetry = async (): Promise<void> => {
    if (loadingTelemetry) return;
    loadingTelemetry = true;
    try {
      const answer = await get<LatestTelemetry>(`${path}/telemetry/latest/`);
      if (!open) return;
      telemetryStatus.clear();
      const rows = [...answer.latest].sort((a, b) => a.topic.localeCompare(b.topic));
      replace(
        latest,
        rows.length === 0
          ? h('p', { class: 'muted empty' }, 'No telemetry yet. The device publishes it on ', h('code', {}, `${context.connection.base}/devices/${id}/telemetry/<name>`), '.')
          : table(
              ['Topic', 'Value', 'Received'],
              rows.map((row) => [
                h('code', { class: 'telemetry-topic', 'data-topic': row.topic, title: `${context.connection.base}/devices/${id}/telemetry/${row.topic}` }, row.topic || '(none)'),
                telemetryValue(row.data),
                h('span', {}, relative(row.time), h('span', { class: 'muted small stamp' }, exact(row.time))),
              ]),
              '',
            ),
      );
    } catch (error) {
      if (open) telemetryStatus.show('error', `Telemetry: ${message(error)}`);
    } finally {
      loadingTelemetry = false;
    }
  };

  // ---- commands ----
  const history = h('div', { id: 'command-history' });
  const historyStatus = notice();
  let newest: IotCommand | undefined;
  const command = commandForm({
    id: 'device-command-form',
    submit: 'Send command',
    send: async (name, parameters) => {
      const sent = await post<IotCommand>(`${path}/commands/`, { command: name, parameters });
      await loadCommands();
      watch();
      return `Sent “${sent.command}” (QoS 2); its status below follows the device's answers.`;
    },
  });
  let loadingCommands = false;
  const loadCommands = async (): Promise<void> => {
    if (loadingCommands) return;
    loadingCommands = true;
    try {
      const list = await get<IotCommand[]>(`${path}/commands/`);
      if (!open) return;
      historyStatus.clear();
      newest = list[0];
      replace(history, historyTable(list));
      command.suggest(list.map((c) => c.command));
    } catch (error) {
      if (open) historyStatus.show('error', `Commands: ${message(error)}`);
    } finally {
      loadingCommands = false;
    }
  };
  /** Follows a command just sent more closely than the page's 10 s refresh. */
  const watch = (): void => {
    window.clearInterval(watchTimer);
    let rounds = 0;
    watchTimer = window.setInterval(() => {
      rounds += 1;
      if (!open || rounds > WATCH_ROUNDS || newest?.status === 'acknowledged') {
        window.clearInterval(watchTimer);
        return;
      }
      void loadCommands();
    }, WATCH_MS);
  };

  // ---- configuration (the retained message on the device's config topic) ----
  const configStatus = notice();
  const configText = h('textarea', { name: 'config', rows: 4, spellcheck: 'false', class: 'mono', placeholder: '{"interval": 60}' });
  const configTopic = h('p', { class: 'muted small' });
  const clearConfig = h('button', { type: 'button' }, 'Clear');
  const configForm = h(
    'form',
    { id: 'device-config', novalidate: true },
    configTopic,
    field('Configuration (JSON object)', configText),
    h('div', { class: 'actions' }, clearConfig, h('button', { type: 'submit', class: 'primary' }, 'Save configuration')),
    configStatus.element,
  );
  const showConfig = (answer: { topic: string; config: unknown }): void => {
    replace(configTopic, 'Retained on ', h('code', {}, answer.topic), ': the device gets it when it subscribes there, at once if connected.');
    configText.value = answer.config === null || answer.config === undefined ? '' : JSON.stringify(answer.config, null, 2);
  };
  const loadConfig = async (): Promise<void> => {
    try {
      const answer = await get<{ topic: string; config: unknown }>(`${path}/config/`);
      if (open) showConfig(answer);
    } catch (error) {
      if (open) configStatus.show('error', `Configuration: ${message(error)}`);
    }
  };
  configForm.addEventListener('submit', (event) => {
    event.preventDefault();
    configStatus.clear();
    const parsed = parseParameters(configText.value);
    if (!parsed.ok) {
      configStatus.show('error', parsed.error.replace('Parameters', 'The configuration'));
      return;
    }
    api<{ topic: string; config: unknown }>('PUT', `${path}/config/`, parsed.value)
      .then((answer) => {
        showConfig(answer);
        configStatus.show('success', 'Configuration saved.');
      })
      .catch((error: unknown) => configStatus.show('error', message(error)));
  });
  clearConfig.addEventListener('click', () => {
    configStatus.clear();
    del(`${path}/config/`)
      .then(() => {
        configText.value = '';
        configStatus.show('success', 'Configuration cleared.');
      })
      .catch((error: unknown) => configStatus.show('error', message(error)));
  });

  // ---- settings ----
  const settingsStatus = notice();
  const groupsId = uid('groups');
  const groupList = h('datalist', { id: groupsId });
  const group = input({ name: 'group', value: device.group ?? '', maxlength: 64, list: groupsId, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' });
  const description = input({ name: 'description', value: device.description, maxlength: 200 });
  const settingsErrors = fieldErrors({ group, description }, settingsStatus);
  const settings = h(
    'form',
    { id: 'device-settings', novalidate: true },
    h('div', { class: 'row' }, field('Group', group, 'Empty: no group'), field('Description', description)),
    groupList,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save')),
    settingsStatus.element,
  );
  settings.addEventListener('submit', (event) => {
    event.preventDefault();
    settingsErrors.clear();
    settingsStatus.clear();
    patch<IotDevice>(`${path}/`, { group: group.value.trim() || null, description: description.value.trim() })
      .then(async (saved) => {
        device = saved;
        drawFacts();
        settingsStatus.show('success', 'Saved.');
        await context.changed();
      })
      .catch((error: unknown) => settingsErrors.show(error));
  });
  const drawGroups = (): void => replace(groupList, context.groups().map((g) => h('option', { value: g })));

  // ---- password and removal ----
  const credentialStatus = notice();
  const rotated = h('div', { id: 'rotated' });
  const rotate = h('button', { type: 'button', class: 'danger' }, 'Rotate password');
  rotate.addEventListener('click', () => {
    void (async () => {
      const ok = await confirmDialog({
        title: `Rotate the password of ${id}?`,
        message: `${id} gets a new MQTT password, shown once. Its connections close now, and the old password stops working: update the device before it reconnects.`,
        confirm: 'Rotate password',
        danger: true,
      });
      if (!ok) return;
      credentialStatus.clear();
      rotate.disabled = true;
      try {
        const answer = await post<Rotated>(`${path}/rotate/`);
        replace(rotated, secretBox(`New password for ${id}`, [['Username', answer.username], ['Password', answer.password]]));
        await context.changed();
      } catch (error) {
        credentialStatus.show('error', message(error));
      } finally {
        rotate.disabled = false;
      }
    })();
  });
  const remove = h('button', { type: 'button', class: 'danger' }, 'Remove device');
  remove.addEventListener('click', () => {
    void (async () => {
      const ok = await confirmDialog({
        title: `Remove ${id}?`,
        message: `This deletes ${id} with all its telemetry and commands and closes its connections. It cannot be undone.`,
        confirm: `Remove ${id}`,
        danger: true,
      });
      if (!ok) return;
      credentialStatus.clear();
      remove.disabled = true;
      try {
        await del(`${path}/`);
        toast(`${id} removed.`);
        dialog.close();
        await context.changed();
      } catch (error) {
        credentialStatus.show('error', message(error));
      } finally {
        remove.disabled = false;
      }
    })();
  });

  // ---- the panel ----
  const block = (title: string, ...children: (Node | null)[]): HTMLElement => {
    const headingId = uid('h');
    return h('section', { class: 'block', 'aria-labelledby': headingId }, h('h3', { id: headingId }, title), children);
  };
  const dialog = h(
    'dialog',
    { class: 'drawer', 'aria-labelledby': titleId, 'data-device': id },
    h(
      'div',
      { class: 'drawer-body' },
      h('header', { class: 'drawer-head' }, h('h2', { id: titleId }, h('span', { class: 'visually-hidden' }, 'Device '), id), badge, closeButton),
      facts,
      block('Latest telemetry', telemetryStatus.element, latest, downloads),
      block('Send a command', command.form),
      block('Command history', historyStatus.element, history),
      block('Configuration', configForm),
      block('Settings', settings),
      block(
        'Password and removal',
        h('p', { class: 'muted small' }, 'Rotate the password if it leaked or the device changes hands; remove a device you no longer use.'),
        h('div', { class: 'actions' }, rotate, remove),
        credentialStatus.element,
        rotated,
      ),
      h('details', { class: 'block connection' }, h('summary', {}, 'Connection and topics'), connectionHints(context.connection, id, device.group)),
    ),
  );
  closeButton.addEventListener('click', () => dialog.close());
  // A click on the backdrop (outside the panel) closes it too.
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog) dialog.close();
  });
  dialog.addEventListener('close', () => {
    open = false;
    window.clearInterval(watchTimer);
    dialog.remove();
    context.closed();
  });
  drawFacts();
  drawGroups();
  replace(latest, h('p', { class: 'muted' }, 'Loading…'));
  document.body.append(dialog);
  dialog.showModal();
  closeButton.focus();
  const poll = async (): Promise<void> => {
    await Promise.all([loadTelemetry(), loadCommands(), loadConfig()]);
  };
  void poll();

  return {
    deviceId: id,
    update(next: IotDevice): void {
      device = next;
      drawFacts();
      drawGroups();
    },
    poll,
    close: () => dialog.close(),
  };
}
