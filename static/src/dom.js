// Building the page: every piece of user text goes in as a text node, never as markup.
// h("a", {href, class, onclick}, "text", child) creates an element; attributes are set one by
// one (event handlers as properties), and strings among the children become text nodes.

export function h(tag, attrs = null, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) el[name] = value;
      else if (name === "class") el.className = value;
      else if (name === "dataset") Object.assign(el.dataset, value);
      else if (name === "style") Object.assign(el.style, value);
      else if (name in PROPERTIES) el[name] = value;
      else el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

// Set as properties so that their current state, not only the initial one, follows.
const PROPERTIES = { value: 1, checked: 1, disabled: 1, hidden: 1, open: 1 };

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// Set an element's text only when it differs (a write, even of the same text, costs a layout).
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

// An SVG element (charts drawn as SVG: parallel coordinates), same rules as h().
export function svg(tag, attrs = null, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name.startsWith("on")) el[name] = value;
    else if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
