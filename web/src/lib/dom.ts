// A tiny element builder. Text always goes in as text nodes, never as HTML, so names and
// labels from the API cannot inject markup.

type Child = Node | string | number | null | undefined | false;
/** A child or (nested) lists of them. */
export type Children = Child | Children[];
type AttrValue = string | number | boolean | null | undefined | ((event: Event) => void);
export type Attrs = Record<string, AttrValue>;

/** `h('button', {class: 'primary', onclick: f}, 'Save')`. `false`/`null` attributes are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Children[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') {
      element.addEventListener(name.replace(/^on/, ''), value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends children (nested arrays flattened, empty ones skipped). */
export function append(parent: Node, children: Children[]): void {
  for (const child of children) {
    if (Array.isArray(child)) append(parent, child);
    else if (child === null || child === undefined || child === false) continue;
    else parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces all of `parent`'s children. */
export function replace(parent: Node, ...children: Children[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, children);
}

let ids = 0;
/** A fresh element id, to tie labels to inputs. */
export function uid(prefix: string): string {
  ids += 1;
  return `${prefix}-${ids}`;
}
