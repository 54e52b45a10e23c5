// Admin panel, Users tab: create users (optionally admins), deactivate/reactivate, toggle
// admin, set a password (modal), delete for good (after a confirmation naming the user), and
// each user's client certificate: status with details on hover/focus, one-click issue.

import { h, replace } from '../lib/dom';
import { del, get, post } from '../lib/api';
import { me } from '../lib/boot';
import { confirmDialog, formDialog } from '../lib/dialog';
import { date, dateTime } from '../lib/format';
import { actionButton, checkbox, field, input, notice, onSubmit, passwordField, section, table, toast } from '../lib/ui';
import type { Ca, Certificate, User } from '../lib/types';

/** The certificate that counts for a user: their newest valid one, else their newest one. */
function certificateOf(user: User, certificates: Certificate[]): Certificate | undefined {
  const own = certificates.filter((c) => c.user_id === user.id).sort((a, b) => b.id - a.id);
  return own.find((c) => c.is_active && !c.revoked) ?? own[0];
}

function certificateCell(user: User, cert: Certificate | undefined, haveCa: boolean, status: ReturnType<typeof notice>, refresh: () => Promise<void>): HTMLElement {
  let text: string;
  let kind: string;
  let label: string;
  if (cert && cert.is_active && !cert.revoked) {
    [kind, label, text] = ['ok', 'valid', `Valid until ${date(cert.not_valid_after)} · serial ${cert.serial_number}`];
  } else if (cert?.revoked) {
    [kind, label, text] = ['bad', 'revoked', `Revoked ${dateTime(cert.revoked_at)} · serial ${cert.serial_number}`];
  } else if (cert) {
    [kind, label, text] = ['off', 'inactive', `Issued by an inactive CA · serial ${cert.serial_number}`];
  } else {
    [kind, label, text] = ['off', 'none', haveCa ? 'No client certificate' : 'No client certificate; create a certificate authority on the PKI tab first'];
  }
  const badge = h('span', { class: `badge ${kind} cert-status`, title: text, tabindex: 0, 'aria-label': `Certificate: ${label}. ${text}` }, label);
  const issue =
    kind === 'ok' || !user.is_active || !haveCa
      ? null
      : actionButton('Issue', status, async () => {
          await post('/api/admin/certificates/', { user_id: user.id });
          toast(`Certificate issued for ${user.username}.`);
          await refresh();
        }, { 'aria-label': `Issue a certificate for ${user.username}`, class: 'small issue-cert' });
  return h('div', { class: 'actions' }, badge, issue);
}

function setPassword(user: User): void {
  const status = notice();
  const password = passwordField('New password', { name: 'password', autocomplete: 'new-password', required: true, minlength: 10 });
  const form = h('form', {}, h('p', {}, `Set a new password for ${user.username}. Their sessions end.`), password.wrap, status.element, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Set password')));
  formDialog(`Password for ${user.username}`, form, async () => {
    try {
      await post(`/api/admin/users/${user.id}/set-password/`, { password: password.input.value });
      toast(`Password for ${user.username} changed.`);
    } catch (error) {
      status.show('error', error instanceof Error ? error.message : String(error));
      throw error;
    }
  });
  password.input.focus();
}

function actions(user: User, status: ReturnType<typeof notice>, refresh: () => Promise<void>): HTMLElement {
  const self = user.id === me().id;
  const call = (text: string, run: () => Promise<unknown>, extra: Record<string, string> = {}): HTMLButtonElement =>
    actionButton(text, status, async () => {
      await run();
      await refresh();
    }, { disabled: self, ...extra });
  return h(
    'div',
    { class: 'actions' },
    call(user.is_admin ? 'Remove admin' : 'Make admin', () => post(`/api/admin/users/${user.id}/toggle-admin/`)),
    actionButton('Set password', status, async () => setPassword(user), { disabled: self }),
    user.is_active
      ? call('Deactivate', () => del(`/api/admin/users/${user.id}/`))
      : call('Reactivate', () => post(`/api/admin/users/${user.id}/reactivate/`)),
    call('Delete', async () => {
      const ok = await confirmDialog({
        title: `Delete ${user.username}?`,
        message: `This permanently deletes ${user.username} with all their devices, locations, tokens and shares. Their certificates are revoked. It cannot be undone; deactivating keeps the data.`,
        confirm: `Delete ${user.username}`,
        danger: true,
      });
      if (ok) await del(`/api/admin/users/${user.id}/hard-delete/`);
    }, { class: 'small danger' }),
  );
}

function createForm(refresh: () => Promise<void>): HTMLFormElement {
  const status = notice();
  const username = input({ name: 'username', required: true, autocapitalize: 'none', autocomplete: 'off', pattern: '[\\w.@\\-]+', maxlength: 150 });
  const email = input({ name: 'email', type: 'email', autocomplete: 'off' });
  const first = input({ name: 'first_name', autocomplete: 'off' });
  const last = input({ name: 'last_name', autocomplete: 'off' });
  const password = passwordField('Password', { name: 'password', autocomplete: 'new-password', required: true, minlength: 10 });
  const admin = checkbox('Administrator', { name: 'is_admin' });
  const form = h(
    'form',
    { id: 'create-user' },
    h('div', { class: 'row' }, field('Username', username), field('Email', email)),
    h('div', { class: 'row' }, field('First name', first), field('Last name', last)),
    password.wrap,
    admin.wrap,
    status.element,
    h('button', { type: 'submit', class: 'primary' }, 'Create user'),
  );
  onSubmit(form, status, async () => {
    const user = await post<User>('/api/admin/users/', {
      username: username.value.trim(),
      email: email.value.trim(),
      first_name: first.value,
      last_name: last.value,
      password: password.input.value,
      is_staff: admin.box.checked,
    });
    form.reset();
    status.show('success', `User ${user.username} created.`);
    await refresh();
  });
  return form;
}

export function usersTab(): HTMLElement {
  const status = notice();
  const list = h('div', { id: 'user-list' });
  const refresh = async (): Promise<void> => {
    const [users, certificates, cas] = await Promise.all([
      get<User[]>('/api/admin/users/'),
      get<Certificate[]>('/api/admin/certificates/').catch(() => [] as Certificate[]),
      get<Ca[]>('/api/admin/ca/history/').catch(() => [] as Ca[]),
    ]);
    const haveCa = cas.some((c) => c.is_active);
    replace(
      list,
      table(
        ['User', 'Name', 'Last login', 'Certificate', 'Actions'],
        users.map((u) => {
          const row = [
            h(
              'span',
              { class: 'user-cell', 'data-username': u.username },
              h('strong', {}, u.username),
              u.is_admin ? [' ', h('span', { class: 'badge admin' }, 'admin')] : null,
              u.is_active ? null : [' ', h('span', { class: 'badge bad' }, 'inactive')],
              u.email ? h('div', { class: 'muted small' }, u.email) : null,
            ),
            [u.first_name, u.last_name].filter(Boolean).join(' ') || '—',
            dateTime(u.last_login),
            certificateCell(u, certificateOf(u, certificates), haveCa, status, refresh),
            actions(u, status, refresh),
          ];
          return row;
        }),
        'No users.',
      ),
    );
  };
  refresh().catch((e: unknown) => status.show('error', String(e)));
  return h('div', {}, section('Users', status.element, list), section('Create user', createForm(refresh)));
}
