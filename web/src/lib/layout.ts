// The frame of every page after login: the top bar with the main links, the user's name and
// "admin" badge, and the hamburger menu (Profile, Admin Panel, MQTT Console, About & Setup, Logout).

import '../styles/base.css';
import { boot, me } from './boot';
import { h } from './dom';
import { logout } from './api';

/** Builds the top bar and an empty <main>, which it returns for the page to fill. */
export function layout(options: { wide?: boolean } = {}): HTMLElement {
  const user = me();
  const here = location.pathname;
  const link = (href: string, text: string): HTMLAnchorElement =>
    h('a', { href, 'aria-current': here === href ? 'page' : null }, text);

  const list = h('ul', { class: 'menu-list', id: 'main-menu', hidden: true });
  const item = (child: HTMLElement): HTMLLIElement => h('li', {}, child);
  list.append(
    item(h('a', { href: '/profile/' }, 'Profile')),
    ...(user.is_admin ? [item(h('a', { href: '/admin-panel/' }, 'Admin Panel'))] : []),
    item(h('a', { href: '/console/' }, 'MQTT Console')),
    item(h('a', { href: '/about/' }, 'About & Setup')),
    item(h('button', { type: 'button', class: 'logout', onclick: () => void logout() }, 'Logout')),
  );
  const toggle = h(
    'button',
    { type: 'button', class: 'hamburger', 'aria-expanded': 'false', 'aria-controls': 'main-menu', 'aria-label': 'Menu' },
    '☰',
  );
  const setOpen = (open: boolean): void => {
    list.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
  };
  toggle.addEventListener('click', (event) => {
    event.stopPropagation();
    setOpen(list.hidden);
    if (!list.hidden) list.querySelector<HTMLElement>('a, button')?.focus();
  });
  document.addEventListener('click', (event) => {
    if (!list.hidden && !list.contains(event.target as Node)) setOpen(false);
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !list.hidden) {
      setOpen(false);
      toggle.focus();
    }
  });

  const header = h(
    'header',
    { class: 'topbar' },
    h('a', { class: 'brand', href: '/' }, 'mytracks'),
    h('nav', { class: 'mainnav', 'aria-label': 'Main' }, link('/', 'Map'), link('/history/', 'History'), link('/devices/', 'Devices')),
    h(
      'div',
      { class: 'who' },
      h('span', { class: 'name', title: `Logged in as ${user.username}` }, user.username),
      user.is_admin ? h('span', { class: 'badge admin', title: 'Administrator' }, 'admin') : null,
      h('div', { class: 'menu' }, toggle, list),
    ),
  );
  const main = h('main', { id: 'main', class: options.wide ? 'wide' : null });
  document.body.append(header, main);
  document.body.dataset.version = boot.version;
  return main;
}
