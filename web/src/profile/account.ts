// Profile: name and email, and the password change (current, new, repeated; each with a
// show/hide toggle), and deleting the account (with the password).

import { h } from '../lib/dom';
import { api, get, patch, post } from '../lib/api';
import { confirmDialog } from '../lib/dialog';
import { field, input, notice, onSubmit, passwordField, section } from '../lib/ui';
import type { Account } from '../lib/types';

export function accountSection(): HTMLElement {
  const status = notice();
  const username = input({ name: 'username', readonly: true, autocomplete: 'username' });
  const first = input({ name: 'first_name', autocomplete: 'given-name' });
  const last = input({ name: 'last_name', autocomplete: 'family-name' });
  const email = input({ name: 'email', type: 'email', autocomplete: 'email' });
  const form = h(
    'form',
    { id: 'account-form' },
    field('Username', username, 'Your OwnTracks topic is owntracks/<username>/<device>.'),
    h('div', { class: 'row' }, field('First name', first), field('Last name', last)),
    field('Email', email),
    status.element,
    h('button', { type: 'submit', class: 'primary' }, 'Save'),
  );
  const fill = (a: Account): void => {
    username.value = a.username;
    first.value = a.first_name;
    last.value = a.last_name;
    email.value = a.email;
  };
  get<Account>('/api/account/').then(fill, (e: unknown) => status.show('error', String(e)));
  onSubmit(form, status, async () => {
    fill(await patch<Account>('/api/account/', { first_name: first.value, last_name: last.value, email: email.value }));
    status.show('success', 'Saved.');
  });
  return section('Account', form);
}

export function passwordSection(): HTMLElement {
  const status = notice();
  const current = passwordField('Current password', { name: 'current_password', autocomplete: 'current-password', required: true });
  const fresh = passwordField('New password', { name: 'new_password', autocomplete: 'new-password', required: true, minlength: 10 });
  const again = passwordField('Repeat the new password', { name: 'new_password_again', autocomplete: 'new-password', required: true });
  const form = h(
    'form',
    { id: 'password-form' },
    current.wrap,
    fresh.wrap,
    h('p', { class: 'muted small' }, 'At least 10 characters; common passwords and ones resembling your name are refused.'),
    again.wrap,
    status.element,
    h('button', { type: 'submit', class: 'primary' }, 'Change password'),
  );
  onSubmit(form, status, async () => {
    if (fresh.input.value !== again.input.value) throw new Error('The new passwords differ.');
    await post('/api/account/change-password/', { current_password: current.input.value, new_password: fresh.input.value });
    form.reset();
    status.show('success', 'Password changed. Your other sessions have ended.');
  });
  return section('Password', form);
}

export function deleteAccountSection(): HTMLElement {
  const status = notice();
  const password = passwordField('Password', { name: 'password', autocomplete: 'current-password', required: true });
  const form = h(
    'form',
    { id: 'delete-account-form' },
    h('p', { class: 'muted small' }, 'Deletes your account with all your devices, their history, your tokens, credentials and shares, for good. Export what you want to keep first.'),
    password.wrap,
    status.element,
    h('button', { type: 'submit', class: 'primary danger' }, 'Delete my account'),
  );
  onSubmit(form, status, async () => {
    const yes = await confirmDialog({ title: 'Delete your account?', message: 'This cannot be undone.', confirm: 'Delete my account', danger: true });
    if (!yes) return;
    await api('DELETE', '/api/account/', { password: password.input.value });
    location.assign('/login/');
  });
  return section('Delete account', form);
}
