// /login/: username and password (with a show/hide toggle), then back to where the person
// was going (`?next=`, same site only).

import '../styles/base.css';
import '../styles/login.css';
import { h } from '../lib/dom';
import { post } from '../lib/api';
import { field, input, notice, onSubmit, passwordField } from '../lib/ui';

/** Where to go after logging in: a path on this site, never another host. */
function nextPath(): string {
  const next = new URLSearchParams(location.search).get('next') ?? '/';
  const local = next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\');
  return local ? next : '/';
}

function render(): void {
  const status = notice();
  const username = input({ name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = passwordField('Password', { name: 'password', autocomplete: 'current-password', required: true });
  const form = h(
    'form',
    { class: 'card login', method: 'post', action: '/login/', novalidate: false },
    field('Username', username),
    password.wrap,
    status.element,
    h('button', { type: 'submit', class: 'primary' }, 'Log in'),
  );
  onSubmit(form, status, async () => {
    await post('/api/auth/login/', { username: username.value.trim(), password: password.input.value });
    location.assign(nextPath());
  });
  const main = h(
    'main',
    { class: 'narrow' },
    h('h1', {}, 'Log in to mytracks'),
    form,
    h('p', { class: 'muted small' }, 'Accounts are created by an administrator.'),
  );
  document.body.append(main);
  username.focus();
}

render();
