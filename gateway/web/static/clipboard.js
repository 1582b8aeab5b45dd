// The desktop's clipboard, where the policy lets it cross (GET /api/v1/targets says which way:
// off | to-remote | to-local | both). The gateway enforces the policy whatever this page does;
// the page only offers what will work.
//
// - Paste into the desktop: the operator's clipboard (async Clipboard API, in a secure context)
//   or the panel's text is sent with noVNC's clipboardPasteFrom (Unicode over the Extended
//   Clipboard when the desktop offers it, Latin-1 cut text otherwise).
// - Copy from the desktop: text copied there arrives as noVNC's `clipboard` event; it is shown
//   in the panel and, in a secure context, written to the operator's clipboard.
// - Off: the panel says so and offers nothing.

import { t } from "/static/i18n.js";

const TEXT = {
  button: t("Clipboard"),
  title: t("Clipboard"),
  off: t("Clipboard is off for this desktop."),
  toRemoteOnly: t("You can paste into this desktop; copying from it is off."),
  toLocalOnly: t("You can copy from this desktop; pasting into it is off."),
  both: t("Paste into the desktop, or copy what the desktop copied."),
  paste: t("Paste into the desktop"),
  pasted: t("Sent to the desktop."),
  received: t("The desktop copied this text."),
  copiedLocally: t("The desktop copied this text; it is on your clipboard too."),
  notInClipboard: t("Your clipboard cannot be read here: type or paste the text into the box, then send it."),
  placeholder: t("Text to paste into the desktop, or copied from it"),
  close: t("Close"),
};

function element(tag, properties = {}) {
  return Object.assign(document.createElement(tag), properties);
}

/** The clipboard mode the policy gives this user for ``target`` ("off" when it cannot be learned). */
async function clipboardMode(target) {
  try {
    const response = await fetch("/api/v1/targets", { credentials: "same-origin" });
    if (!response.ok) return "off";
    const found = (await response.json()).targets.find((item) => item.name === target);
    return found?.clipboard ?? "off";
  } catch {
    return "off";
  }
}

/** Add the clipboard button and panel to the page's bar, wired to noVNC's ``rfb``. */
export async function attachClipboard(rfb, target, bar) {
  const button = element("button", { type: "button", id: "clipboard-button", textContent: TEXT.button });
  const panel = element("section", { id: "clipboard-panel", className: "clipboard-panel", hidden: true });
  const heading = element("h2", { textContent: TEXT.title });
  const state = element("p", { id: "clipboard-state", className: "muted" });
  const text = element("textarea", { id: "clipboard-text", rows: 5, placeholder: TEXT.placeholder });
  const paste = element("button", { type: "button", id: "clipboard-paste", textContent: TEXT.paste });
  const close = element("button", { type: "button", className: "secondary", textContent: TEXT.close });
  const message = element("p", { id: "clipboard-message", role: "status" });
  panel.append(heading, state, text, paste, close, message);
  bar.insertBefore(button, bar.querySelector("#disconnect"));
  bar.after(panel);
  button.addEventListener("click", () => { panel.hidden = !panel.hidden; });
  close.addEventListener("click", () => { panel.hidden = true; rfb.focus(); });

  const mode = await clipboardMode(target);
  const toRemote = mode === "to-remote" || mode === "both";
  const toLocal = mode === "to-local" || mode === "both";
  panel.dataset.mode = mode;
  state.textContent = { off: TEXT.off, "to-remote": TEXT.toRemoteOnly, "to-local": TEXT.toLocalOnly }[mode] ?? TEXT.both;
  text.hidden = !toRemote && !toLocal;
  text.readOnly = !toRemote;
  paste.hidden = !toRemote;
  const secure = window.isSecureContext && navigator.clipboard;

  paste.addEventListener("click", async () => {
    let value = text.value;
    if (!value && secure) {
      try {
        value = await navigator.clipboard.readText();
        text.value = value;
      } catch {
        message.textContent = TEXT.notInClipboard;
        return;
      }
    }
    if (!value) {
      message.textContent = TEXT.notInClipboard;
      return;
    }
    rfb.clipboardPasteFrom(value);
    message.textContent = TEXT.pasted;
  });

  rfb.addEventListener("clipboard", async (event) => {
    if (!toLocal) return;  // the gateway drops it anyway
    text.value = event.detail.text;
    message.textContent = TEXT.received;
    if (!secure) return;
    try {
      await navigator.clipboard.writeText(event.detail.text);
      message.textContent = TEXT.copiedLocally;
    } catch {
      // Not focused or not allowed: the panel keeps the text for the operator to copy.
    }
  });
}
