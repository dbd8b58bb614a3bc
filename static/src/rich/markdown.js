// Markdown rendered by marked, with raw HTML in it kept as text, then sanitised by DOMPurify
// (javascript: links and the like removed); the CSP would stop any script anyway. Loaded only
// by a view that shows markdown.
import DOMPurify from "dompurify";
import { marked } from "marked";
import { h } from "../dom.js";

// Raw HTML inside markdown is shown as the text it is: a training script's report needs
// markdown, not markup. DOMPurify then cleans what marked made (javascript: links, etc.).
const renderer = new marked.Renderer();
renderer.html = ({ text }) => escapeHtml(text);
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);

export function markdown(text) {
  const html = marked.parse(text, { async: false, renderer });
  const clean = DOMPurify.sanitize(html, { FORBID_TAGS: ["style", "form", "input"] });
  const parsed = new DOMParser().parseFromString(clean, "text/html");
  return h("div", { class: "markdown" }, [...parsed.body.childNodes].map((node) => document.importNode(node, true)));
}
