/* auditbird viewer: the one DOM helper app.js and streams.js share, loaded before both.
 *
 * el(tag, attrs, ...kids) builds an element: "class" and "text" set className and textContent,
 * on* attributes add listeners, false/null/undefined leave an attribute out. Values always go in
 * as text or attributes, never as HTML, so nothing the server sends is parsed as markup.
 */
"use strict";
window.auditbirdDom = Object.freeze({
  el(tag, attrs = {}, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) node.append(kid);
    return node;
  },
});
